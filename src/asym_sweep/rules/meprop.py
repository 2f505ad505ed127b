"""meProp's variants ("Variations of meProp", the meProp authors' notes) and random selection
(SWAT, "Sparse Weight Activation Training", Figure 3).

All of them keep meProp's backward (thesis eqs. 7.1-7.3: only the selected
sensitivities of a layer propagate, to the weight, bias and input gradients) and
change *which* or *how many* sensitivities are selected:

==================  ==============================================================  ===========
rule                selection                                                       source
==================  ==============================================================  ===========
topk_fraction       the ``ceil(fraction * width)`` largest, so k follows the layer    003, "k for hidden
                    width                                                           layer dimensions"
topk_anneal_epoch   the k largest; k multiplied by ``factor`` at each listed epoch   003, "annealing k"
topk_anneal_val     the k largest; k multiplied by ``factor`` after every epoch     003, "annealing k"
                    whose validation loss rose
topk_norm           per example the fewest largest entries whose L1 mass exceeds    003, "norm-limited
                    ``tau`` of the total (``k_i = min{k : |top_k(g_i)|_1 >           k selection"
                    tau |g_i|_1}``)
random              k entries drawn uniformly at random, unscaled                   002, Fig. 3 (null
                                                                                    hypothesis)
==================  ==============================================================  ===========

Scopes as in ``thesis.py``: ``sample`` selects per example (masks on dense
products), ``batch`` selects one set of output neurons per mini-batch and runs
compact products on it. For ``topk_norm`` the batch scope applies the mass rule
to the magnitudes summed over the batch (meProp's "unified" selection); its
per-example definition is the sample scope, which its config uses. ``random``
draws from the run's global torch generator, which the training loop seeds from
the run's seed and saves in every checkpoint, so random runs are reproducible
and resume exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch
from torch import Tensor

from asym_sweep.engine.gradients import dense_grads, row_block_grads
from asym_sweep.engine.rule import BackwardRule, check_k, check_real, register_rule, timed
from asym_sweep.rules.families import OneK, SelectedSensitivities
from asym_sweep.selection import keep_count, topk_columns


@register_rule("topk_fraction")
@dataclass(kw_only=True)
class FractionTopK(SelectedSensitivities):
    """k as a fraction of each layer's width (003, "changing k for hidden layer dimensions")."""

    fraction: float

    def __post_init__(self) -> None:
        super().__post_init__()
        check_real("fraction", self.fraction, 0.0, 1.0)

    def current_k(self, n_out: int) -> int:
        return keep_count(self.fraction, n_out)


@dataclass(kw_only=True)
class _AnnealedTopK(SelectedSensitivities):
    """Top-k whose k only ever decreases during training (003, "annealing k")."""

    k: int
    factor: float = 0.5
    min_k: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_k("k", self.k)
        check_k("min_k", self.min_k)
        check_real("factor", self.factor, 0.0, 1.0, high_closed=False, why=" so that k decreases")
        if self.min_k > self.k:
            raise ValueError(f"min_k ({self.min_k}) must not exceed the starting k ({self.k})")
        self.k_now = self.k

    def current_k(self, n_out: int) -> int:
        return min(self.k_now, n_out)

    def _reduced(self, k: int) -> int:
        return max(self.min_k, math.floor(k * self.factor))

    def keeps_everything(self, n_in: int, n_out: int) -> bool:
        # Static decision (the layer is built once): only when even the smallest k keeps all.
        return self.min_k >= n_out

    def notes(self) -> dict[str, Any]:
        return {"k": self.k_now}

    def state_dict(self) -> dict[str, Any]:
        return {"k_now": self.k_now}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.k_now = int(state["k_now"])


@register_rule("topk_anneal_epoch")
@dataclass(kw_only=True)
class EpochAnnealedTopK(_AnnealedTopK):
    """k starts at ``k`` and is multiplied by ``factor`` (floored, at least ``min_k``) at the
    start of each epoch listed in ``milestones`` (1-based epoch numbers, as in the results)."""

    milestones: Sequence[int] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        for m in self.milestones:
            if isinstance(m, bool) or not isinstance(m, int) or m < 2:
                raise ValueError(f"milestones must be epoch numbers >= 2, got {list(self.milestones)!r}")
        self.milestones = tuple(sorted(self.milestones))

    def start_epoch(self, epoch: int, n_epochs: int) -> None:
        # Recomputed from the schedule, so a resumed run lands on the same k.
        k = self.k
        for m in self.milestones:
            if m <= epoch + 1:
                k = self._reduced(k)
        self.k_now = k


@register_rule("topk_anneal_val")
@dataclass(kw_only=True)
class ValLossAnnealedTopK(_AnnealedTopK):
    """k multiplied by ``factor`` (floored, at least ``min_k``) after every epoch whose
    validation loss is higher than the previous epoch's (003: "reduce ... after a sharp
    increase in dev loss"; any rise counts)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.last_val_loss: float | None = None

    def end_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        loss = metrics.get("val_loss")
        if loss is None or not math.isfinite(loss):
            return  # no validation set: k stays
        if self.last_val_loss is not None and loss > self.last_val_loss:
            self.k_now = self._reduced(self.k_now)
        self.last_val_loss = loss

    def state_dict(self) -> dict[str, Any]:
        return {"k_now": self.k_now, "last_val_loss": self.last_val_loss}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.k_now = int(state["k_now"])
        self.last_val_loss = state["last_val_loss"]


def norm_limited_counts(v: Tensor, tau: float) -> Tensor:
    """Per row of ``v``: ``min{k : |top_k(v)|_1 > tau |v|_1}`` (003, norm-limited selection).

    With ``c`` the number of top-j prefixes whose mass is still ``<= tau * total``,
    the answer is ``c + 1``. A zero row has no such k; it keeps every entry (all zero).
    """
    mags = v.abs().sort(dim=-1, descending=True).values
    mass = mags.cumsum(dim=-1)
    limit = tau * mass[..., -1:]
    return ((mass <= limit).sum(dim=-1) + 1).clamp(max=v.shape[-1])


def keep_first(v: Tensor, counts: Tensor) -> Tensor:
    """Keep, in every row of ``v``, its ``counts[row]`` largest-magnitude entries."""
    order = v.abs().argsort(dim=-1, descending=True)
    ranks = torch.arange(v.shape[-1], device=v.device).expand_as(v)
    mask = torch.zeros_like(v, dtype=torch.bool).scatter_(-1, order, ranks < counts.unsqueeze(-1))
    return torch.where(mask, v, torch.zeros((), dtype=v.dtype, device=v.device))


@register_rule("topk_norm")
@dataclass(kw_only=True)
class NormLimitedTopK(BackwardRule):
    """Per example, the fewest sensitivities holding more than ``tau`` of its L1 mass."""

    madds_depend_on_data: ClassVar[bool] = True

    tau: float

    def __post_init__(self) -> None:
        super().__post_init__()
        check_real("tau", self.tau, 0.0, 1.0, high_closed=False)
        self.kept_rows = 0.0  # selected (example, neuron) pairs of the last backward, for FLOPs

    def backward(self, g, x, weight, needs, clock):  # type: ignore[override]
        if self.scope == "sample":
            with timed(clock):
                counts = norm_limited_counts(g, self.tau)
                g = keep_first(g, counts)
            self.kept_rows = float(counts.sum())
            return dense_grads(g, x, weight, needs)
        with timed(clock):
            k = int(norm_limited_counts(g.abs().sum(0), self.tau))
            rows = topk_columns(g, k)
        self.kept_rows = float(g.shape[0] * k)
        return row_block_grads(g, x, weight, needs, rows)

    def backward_madds(self, batch: int, n_in: int, n_out: int, input_grad: bool) -> float:
        # Data-dependent: what the last backward kept (before any: the dense count).
        kept = self.kept_rows if self.kept_rows else batch * n_out
        return kept * n_in * (2 if input_grad else 1)


def random_columns(n: int, k: int, device: torch.device) -> Tensor | None:
    if k >= n:
        return None
    return torch.randperm(n, device=device)[:k].sort().values


def random_rows(v: Tensor, k: int) -> Tensor:
    """Keep ``k`` uniformly random entries of every row of ``v`` (sign and size ignored)."""
    if k >= v.shape[-1]:
        return v
    idx = torch.rand(v.shape, device=v.device).topk(k, dim=-1, sorted=False).indices
    return torch.zeros_like(v).scatter_(-1, idx, v.gather(-1, idx))


@register_rule("random")
@dataclass(kw_only=True)
class RandomK(SelectedSensitivities, OneK):
    """k sensitivities chosen uniformly at random: the null hypothesis for top-k
    (SWAT's Figure 3 sets random components to zero). No rescaling of what is kept."""

    def current_k(self, n_out: int) -> int:
        return min(self.k, n_out)

    def select_each(self, g: Tensor, k: int) -> Tensor:
        return random_rows(g, k)

    def select_columns(self, g: Tensor, k: int) -> Tensor | None:
        return random_columns(g.shape[1], k, g.device)
