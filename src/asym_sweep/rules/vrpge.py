"""Learned neuron masks trained with two sampled sub-networks (VR-PGE).

Source: the supplement of Zhou et al., "Efficient Neural
Network Training via Forward and Backward Propagation Sparsification" (sections
A.3, B, C.1). Every hidden neuron ``j`` has a keep-probability ``s_j``; a mask
``m ~ Bernoulli(s)`` picks a sub-network. Each training step:

1. samples two independent masks ``m`` and ``m'``;
2. runs both sub-networks forward and backward, using only their kept neurons
   (gathered weight blocks, compact products: a sub-network with a share ``rho``
   of the neurons costs about ``rho^2`` of the dense products, C.1). The weights
   get the mean of the two sub-networks' gradients (zero for neurons a mask dropped);
3. updates ``s`` with the variance-reduced policy-gradient estimator (eq. 12):
   ``(L(m) - L(m')) H^alpha(s) grad_s ln p(m|s)``, whose component ``j`` is
   ``(L(m) - L(m')) (m_j - s_j) (s_j (1 - s_j))^(alpha - 1)`` (eq. 8, third line),
   fed to Adam (section B: Adam, learning rate 12e-3; alpha = 1/2, Remark 4);
4. projects ``s`` onto ``{s in [0, 1]^n : sum(s) <= budget}`` (Euclidean projection).

After ``finetune_epochs`` from the end, the masks are frozen and the chosen
sub-network alone is trained (one forward and backward per step).

Readings (``docs/methods.md``):

* The budget is global over all hidden neurons: ``budget = keep * n_hidden``, and
  ``s`` starts at ``keep`` everywhere (feasible, no neuron preferred).
* The frozen (and evaluated) sub-network keeps the ``floor(budget)`` neurons with
  the largest ``s`` (ties: lower index first), plus a layer's best neuron where a
  layer would otherwise be empty. Evaluation during the search uses this
  deterministic sub-network too, so validation accuracy is that of the model
  the method would deliver.
* ``s_j`` is clamped to ``[1e-6, 1 - 1e-6]`` inside the score, which is
  ``0/0`` at the bounds; a neuron with ``s_j = 0`` is never sampled.
* Input pixels and the 10 logits are never masked; no dropout.
* Masks are drawn from their own generator (run seed + an offset), saved in
  checkpoints with ``s`` and its optimizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from asym_sweep.engine.autograd import GradSink
from asym_sweep.engine.gradients import dense_backward_madds
from asym_sweep.engine.procedure import Layered, Procedure, register_procedure
from asym_sweep.engine.rule import BackwardRule, check_int, check_real, register_rule
from asym_sweep.timing import Timers

MASK_SEED_OFFSET = 3_000_017
SCORE_EPS = 1e-6


def project_capped_simplex(v: Tensor, budget: float, iterations: int = 100) -> Tensor:
    """Euclidean projection of ``v`` onto ``{s in [0, 1]^n : sum(s) <= budget}``.

    KKT: the answer is ``clip(v - theta, 0, 1)`` with ``theta = 0`` if that
    already satisfies the budget, else the ``theta > 0`` at which the clipped sum
    equals the budget. The clipped sum decreases continuously in ``theta``, so
    bisection (in float64) finds it; the upper end is returned, which is feasible
    (exactly so in float64; a float32 ``v`` gets float32 rounding on top).
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    w = v.detach().double()
    clipped = w.clamp(0.0, 1.0)
    if float(clipped.sum()) <= budget:
        return clipped.to(v.dtype)
    lo, hi = 0.0, float(w.max())  # at theta = max(v) every entry clips to 0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if float((w - mid).clamp(0.0, 1.0).sum()) > budget:
            lo = mid
        else:
            hi = mid
    return (w - hi).clamp(0.0, 1.0).to(v.dtype)


def policy_gradient(mask: Tensor, s: Tensor, loss_difference: float, alpha: float) -> Tensor:
    """``(L(m) - L(m')) H^alpha(s) grad_s ln p(m|s)`` for Bernoulli masks (004, eqs. 8 and 12).

    ``grad_s ln p(m|s) = (m - s) / (s (1 - s))`` and ``H^alpha(s) = diag(s^alpha (1 - s)^alpha)``.
    """
    sc = s.clamp(SCORE_EPS, 1.0 - SCORE_EPS)
    return loss_difference * (mask.to(s.dtype) - s) * (sc * (1.0 - sc)).pow(alpha - 1.0)


class Block(NamedTuple):
    """The gathered weight and bias of one layer of a sub-network."""

    weight: Tensor
    bias: Tensor
    rows: Tensor | None  # kept output neurons (None: all, the logits)
    cols: Tensor | None  # kept input neurons (None: all, the pixels)


def gather_blocks(model: Layered, keep: Sequence[Tensor], detach: bool = True) -> list[Block]:
    """Per layer, the weight rows and columns and the bias entries of the kept neurons.

    ``detach=True`` (training): the blocks are leaves of their own and
    `write_block_grads` puts their gradients into the parameters' ``.grad``. Letting
    autograd differentiate the gathers instead (``detach=False``) zero-fills
    full-size gradient tensors twice per layer and sub-network: profiled on
    l3-1024 at keep 0.1, ``fill_`` took about 4 ms of a step.
    """
    blocks = []
    last = len(model.layers) - 1
    for i, layer in enumerate(model.layers):
        rows = keep[i] if i < last else None
        cols = keep[i - 1] if i > 0 else None
        weight, bias = (layer.weight.detach(), layer.bias.detach()) if detach else (layer.weight, layer.bias)
        if rows is not None:
            weight, bias = weight.index_select(0, rows), bias.index_select(0, rows)
        if cols is not None:
            weight = weight.index_select(1, cols)
        if detach:
            weight, bias = weight.requires_grad_(True), bias.requires_grad_(True)
        blocks.append(Block(weight, bias, rows, cols))
    return blocks


def blocks_forward(blocks: Sequence[Block], x: Tensor) -> Tensor:
    """Logits of a sub-network from its gathered blocks (compact products only)."""
    h = x.reshape(x.shape[0], -1)
    for i, block in enumerate(blocks):
        h = F.linear(h, block.weight, block.bias)
        if i < len(blocks) - 1:
            h = F.relu(h)
    return h


def subnetwork_forward(model: Layered, x: Tensor, keep: Sequence[Tensor]) -> Tensor:
    """Logits of the sub-network that keeps hidden neurons ``keep[i]`` of hidden layer ``i``,
    differentiable with respect to the parameters through the gathers (evaluation, and the
    reference the training path is tested against). Equal to the dense network with the
    dropped neurons' activations set to zero."""
    return blocks_forward(gather_blocks(model, keep, detach=False), x)


def write_block_grads(sink: GradSink, model: Layered, blocks: Sequence[Block]) -> None:
    """Put each block's gradient at its rows and columns of its layer's ``.grad``: written by
    the first sub-network of a step (``.grad`` is None after ``zero_grad``), added by the
    second. No step touches a dropped neuron's weights (`autograd.GradSink`)."""
    for layer, block in zip(model.layers, blocks):
        gw, gb = block.weight.grad, block.bias.grad
        assert gw is not None and gb is not None
        rows = block.rows if block.rows is not None else torch.arange(layer.out_features, device=gw.device)
        sink.write(layer.weight, rows, gw, block.cols)
        sink.write(layer.bias, rows, gb)


def subnetwork_madds(model: Layered, keep: Sequence[Tensor], batch: int) -> tuple[int, int]:
    """(forward, backward) multiply-adds of one sub-network pass (no input gradient for layer 1)."""
    sizes = [model.layers[0].in_features] + [len(k) for k in keep] + [model.layers[-1].out_features]
    products = [batch * n_in * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    return sum(products), sum(p * (2 if i > 0 else 1) for i, p in enumerate(products))


@register_rule("vrpge")
@dataclass(kw_only=True)
class NeuronMasks(BackwardRule):
    """The method's parameters; its step is `MaskProcedure`. Within a sampled sub-network
    backprop is exact, so the per-layer rule is PyTorch's own autograd."""

    keep: float = 0.5  # budget: sum(s) <= keep * (hidden neurons); rho of 004
    alpha: float = 0.5  # preconditioner exponent (Remark 4)
    lr: float = 12e-3  # Adam learning rate for s (section B)
    finetune_epochs: int = 1  # last epochs trained with frozen masks

    autograd_native = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_real("keep", self.keep, 0.0, 1.0)
        check_real("alpha", self.alpha, 0.0, 1.0, low_closed=True)
        check_real("lr", self.lr, 0.0, math.inf, high_closed=False)
        check_int("finetune_epochs", self.finetune_epochs, minimum=0)

    def backward(self, g, x, weight, needs, clock):  # type: ignore[override]
        raise RuntimeError("vrpge layers use autograd; train them through MaskProcedure")

    def backward_madds(self, batch: int, n_in: int, n_out: int, input_grad: bool) -> float:
        return dense_backward_madds(batch, n_in, n_out, input_grad)

    def check_training(self, n_epochs: int) -> None:
        if self.finetune_epochs >= n_epochs:
            raise ValueError(
                f"method.params.finetune_epochs={self.finetune_epochs} leaves no epoch to learn the masks "
                f"in train.epochs={n_epochs}; use fewer fine-tuning epochs"
            )


@register_procedure(NeuronMasks)
class MaskProcedure(Procedure):
    """VR-PGE's step: two sampled sub-networks, averaged weight gradient, s update, projection."""

    def __init__(self, model: Layered, optimizer: torch.optim.Optimizer, timers: Timers, seed: int) -> None:
        super().__init__(model, optimizer, timers, seed)
        rule = model.layers[0].rule
        if not isinstance(rule, NeuronMasks):
            raise ValueError("MaskProcedure needs the vrpge rule on the model's layers")
        self.params = rule
        device = model.layers[0].weight.device
        self.widths = [layer.out_features for layer in model.layers[:-1]]
        n = sum(self.widths)
        self.budget = rule.keep * n
        # float64: the projection is then feasible to ~1e-12 (float32 rounding can exceed the budget).
        self.s = torch.full((n,), float(rule.keep), dtype=torch.float64, device=device, requires_grad=True)
        self.s_optimizer = torch.optim.Adam([self.s], lr=rule.lr)
        self.generator = torch.Generator(device=device).manual_seed(seed + MASK_SEED_OFFSET)
        self.frozen: list[Tensor] | None = None
        self.sink = GradSink()

    # -- masks -------------------------------------------------------------

    def sample(self) -> Tensor:
        """A Bernoulli(s) mask over all hidden neurons."""
        u = torch.rand(self.s.shape, generator=self.generator, dtype=self.s.dtype, device=self.s.device)
        return u < self.s.detach()

    def split(self, mask: Tensor) -> list[Tensor]:
        """Per hidden layer, the indices of the kept neurons."""
        return [part.nonzero().flatten() for part in mask.split(self.widths)]

    def deterministic(self) -> list[Tensor]:
        """The ``floor(budget)`` most probable neurons, at least one per layer."""
        s = self.s.detach()
        count = max(0, min(len(s), math.floor(self.budget + 1e-9)))
        order = torch.argsort(-s, stable=True)
        mask = torch.zeros_like(s, dtype=torch.bool)
        mask[order[:count]] = True
        parts = list(mask.split(self.widths))
        for part, values in zip(parts, s.split(self.widths)):
            if not part.any():
                part[int(torch.argmax(values))] = True
        return [part.nonzero().flatten() for part in parts]

    def update_s(self, mask: Tensor, loss_difference: float) -> None:
        self.s.grad = policy_gradient(mask, self.s.detach(), loss_difference, self.params.alpha)
        self.s_optimizer.step()
        self.s_optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.s.copy_(project_capped_simplex(self.s, self.budget))

    # -- procedure ---------------------------------------------------------

    def step(self, xb: Tensor, yb: Tensor) -> Tensor:
        if self.frozen is not None:
            return self._finetune_step(xb, yb)
        t = self.timers
        with t["select"].measure():
            m1, m2 = self.sample(), self.sample()
            keep1, keep2 = self.split(m1), self.split(m2)
        with t["forward"].measure():
            blocks1, blocks2 = gather_blocks(self.model, keep1), gather_blocks(self.model, keep2)
            loss1 = F.cross_entropy(blocks_forward(blocks1, xb), yb)
            loss2 = F.cross_entropy(blocks_forward(blocks2, xb), yb)
            loss = 0.5 * (loss1 + loss2)
        with t["backward"].measure():
            loss.backward()
            # The weights' gradient: the mean of the two sub-networks' (the 0.5 above).
            write_block_grads(self.sink, self.model, blocks1)
            write_block_grads(self.sink, self.model, blocks2)
        with t["optimizer"].measure():
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        with t["select"].measure():
            self.update_s(m1, float(loss1.detach() - loss2.detach()))
        f1, b1 = subnetwork_madds(self.model, keep1, len(yb))
        f2, b2 = subnetwork_madds(self.model, keep2, len(yb))
        self.count(f1 + f2, b1 + b2, len(yb))
        self.step_count += 1
        return loss.detach()

    def _finetune_step(self, xb: Tensor, yb: Tensor) -> Tensor:
        assert self.frozen is not None
        t = self.timers
        with t["forward"].measure():
            blocks = gather_blocks(self.model, self.frozen)
            loss = F.cross_entropy(blocks_forward(blocks, xb), yb)
        with t["backward"].measure():
            loss.backward()
            write_block_grads(self.sink, self.model, blocks)
        with t["optimizer"].measure():
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.count(*subnetwork_madds(self.model, self.frozen, len(yb)), len(yb))
        self.step_count += 1
        return loss.detach()

    def predict(self, x: Tensor) -> Tensor:
        return subnetwork_forward(self.model, x, self.frozen if self.frozen is not None else self.deterministic())

    def start_epoch(self, epoch: int, n_epochs: int) -> None:
        if self.frozen is None and epoch >= n_epochs - self.params.finetune_epochs:
            self.frozen = self.deterministic()

    def epoch_notes(self) -> dict[str, Any]:
        kept = self.frozen if self.frozen is not None else self.deterministic()
        return {
            "phase": "finetune" if self.frozen is not None else "search",
            "kept_neurons": int(sum(len(k) for k in kept)),
            "s_sum": float(self.s.detach().sum()),
            # How decided the masks are: neurons almost surely kept or dropped.
            "s_above_0.9": int((self.s.detach() > 0.9).sum()),
            "s_below_0.1": int((self.s.detach() < 0.1).sum()),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "s": self.s.detach().clone(),
            "s_optimizer": self.s_optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "frozen": None if self.frozen is None else [k.clone() for k in self.frozen],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.s.copy_(state["s"])
        self.s_optimizer.load_state_dict(state["s_optimizer"])
        self.generator.set_state(state["generator"])
        self.frozen = None if state["frozen"] is None else [k.to(self.s.device) for k in state["frozen"]]
