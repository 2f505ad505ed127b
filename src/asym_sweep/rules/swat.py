"""SWAT and SAW: sparse weights and activations instead of sparse sensitivities.

Source: Raihan & Aamodt, "Sparse Weight Activation Training" (SWAT), Algorithm 1 and
sections 2.2 and 3.2. With ``f_TOPK`` keeping the
largest-magnitude ``keep = ceil((1 - sparsity) * n)`` of ``n`` entries (the paper
states sparsity, the share set to zero; default 0.7):

=========  ========================  ======================  =================  ===========
rule       forward                   grad of W               grad of x          grad of b
=========  ========================  ======================  =================  ===========
swat       x f_TOPK(W)^T + b         g^T f_TOPK(x)           g f_TOPK(W)        sum g
saw        x W^T + b (dense)         g^T f_TOPK(x)           g f_TOPK(W)        sum g
=========  ========================  ======================  =================  ===========

The output gradient (sensitivity) ``g`` is never sparsified: that is SWAT's
point against meProp (section 2.2, Figure 2b). The optimizer updates the dense
weights with these gradients, so weights outside the top-K% keep learning and
can re-enter it (the paper's dynamic sparsity).

Readings (``docs/methods.md``):

* ``scope="batch"`` is the paper's TOPK-NCHW choice: one top-K over the whole
  mini-batch activation tensor (batch x inputs) and over the whole weight
  matrix of the layer. ``scope="sample"`` is TOPK-CHW: K% of every example's
  activations and K% of every output neuron's incoming weights (a "filter").
* ``period`` > 1 is section 3.2's threshold reuse: the k-th largest magnitude
  (the threshold) of each tensor is found by an exact top-K on the steps
  ``0, period, 2*period, ...`` and in between entries are kept when their
  magnitude is at least that threshold, so the number kept varies. It applies
  to the batch scope only; per-example thresholds of other examples mean nothing.
* The sparsified weights are also used at evaluation (SWAT trains a pruned model).
* The bias is neither sparsified nor exempt from training.

FLOPs are counted from what was actually kept: ``batch * nnz(W~)`` for the
forward (SWAT) and the input gradient, ``n_out * nnz(x~)`` for the weight
gradient. On dense CPU kernels the masked products cost as much as dense ones;
the saving is the multiply-add count a sparse kernel would do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from asym_sweep.engine.gradients import LinearGrads, Needs, dense_grads
from asym_sweep.engine.rule import BackwardRule, check_int, check_real, register_rule, timed
from asym_sweep.selection import keep_count, threshold, topk_rows, topk_whole
from asym_sweep.timing import Stopwatch

KINDS = ("weight", "input")


@dataclass(kw_only=True)
class _SparseWeightsActivations(BackwardRule):
    sparsity: float = 0.7
    period: int = 1

    madds_depend_on_data: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_real(
            "sparsity",
            self.sparsity,
            0.0,
            1.0,
            low_closed=True,
            high_closed=False,
            why=" (the share of entries set to zero)",
        )
        check_int("period", self.period)
        if self.period > 1 and self.scope != "batch":
            raise ValueError("threshold reuse (period > 1) needs scope=batch: a per-example threshold cannot be reused")
        self.thresholds: dict[str, float | None] = {kind: None for kind in KINDS}
        self._refresh = {kind: True for kind in KINDS}
        # Entries kept by the last call, per tensor kind, for the FLOP count.
        self.kept: dict[str, int | None] = {kind: None for kind in KINDS}

    def sparsify(self, kind: str, v: Tensor, nonnegative: bool = False) -> Tensor:
        """``f_TOPK`` of a weight matrix or an activation batch, as this rule's scope says
        (``nonnegative``: ``v`` is known to have no negative entry, see `gradients.Needs`)."""
        if self.scope == "sample":
            # Per row: an example's activations, or an output neuron's incoming weights.
            keep = keep_count(1.0 - self.sparsity, v.shape[-1])
            self.kept[kind] = v.shape[0] * keep
            return topk_rows(v, keep, nonnegative)
        keep = keep_count(1.0 - self.sparsity, v.numel())
        if self.period == 1 or self._refresh[kind] or self.thresholds[kind] is None:
            out, self.thresholds[kind] = topk_whole(v, keep, nonnegative)
            self._refresh[kind] = False
            self.kept[kind] = min(keep, v.numel())
            return out
        out = threshold(v, self.thresholds[kind], nonnegative)
        self.kept[kind] = int((out != 0).sum()) if self.thresholds[kind] > 0 else v.numel()
        return out

    def start_step(self, step: int) -> None:
        if step % self.period == 0:
            self._refresh = {kind: True for kind in KINDS}

    def backward(self, g: Tensor, x: Tensor, weight: Tensor, needs: Needs, clock: Stopwatch | None) -> LinearGrads:
        with timed(clock):
            # SWAT received the forward's f_TOPK(W) already (saved for backward, Algorithm 1).
            w = weight if not self.dense_forward or not needs.input else self.sparsify("weight", weight)
            xs = self.sparsify("input", x, needs.input_nonnegative) if needs.weight else x
        return dense_grads(g, xs, w, needs)

    def _kept(self, kind: str, rows: int, cols: int) -> int:
        """Entries of a (rows, cols) tensor the last call kept; before any call, the nominal count."""
        kept = self.kept[kind]
        if kept is not None:
            return kept
        if self.scope == "sample":
            return rows * keep_count(1.0 - self.sparsity, cols)
        return keep_count(1.0 - self.sparsity, rows * cols)

    def forward_madds(self, batch: int, n_in: int, n_out: int) -> float:
        if self.dense_forward:
            return super().forward_madds(batch, n_in, n_out)
        return batch * self._kept("weight", n_out, n_in)

    def backward_madds(self, batch: int, n_in: int, n_out: int, input_grad: bool) -> float:
        weight_grad = n_out * self._kept("input", batch, n_in)
        input_grad_madds = batch * self._kept("weight", n_out, n_in)
        return weight_grad + (input_grad_madds if input_grad else 0)

    def state_dict(self) -> dict[str, Any]:
        return {"thresholds": dict(self.thresholds), "refresh": dict(self._refresh)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.thresholds = dict(state["thresholds"])
        self._refresh = dict(state["refresh"])


@register_rule("swat")
@dataclass(kw_only=True)
class SWAT(_SparseWeightsActivations):
    """Sparse Weight Activation Training (002, Algorithm 1): top-K% weights in the forward,
    top-K% activations and weights in the backward, dense output gradient."""

    dense_forward: ClassVar[bool] = False

    def forward_weight(self, weight: Tensor) -> Tensor:
        return self.sparsify("weight", weight)


@register_rule("saw")
@dataclass(kw_only=True)
class SAW(_SparseWeightsActivations):
    """Sparse Activation and Weight back-propagation (002, section 2.2): SWAT's backward
    with a dense forward pass."""
