"""The thesis' rules (Srivastava 2022, chapters 7-8): dense, top-k, partial and complete.

With ``topk_k(v)`` keeping the ``k`` largest-magnitude entries of a vector (sign ignored;
``k >= len(v)`` keeps all; eq. 6.3):

==========  ===========================  ===============  ==================  ==================
rule        grad of W                    grad of b        grad of x           thesis
==========  ===========================  ===============  ==================  ==================
dense       g^T x                        sum g            g W                 ch. 5
topk        topk_k(g)^T x                sum topk_k(g)    topk_k(g) W         eqs. 7.1-7.3, 8.1
partial     topk_k1(g)^T topk_k2(x)      sum topk_k1(g)   topk_k1(g) W        eq. 7.6, 8.7-8.9
complete    topk_k(g)^T topk_k(x)        sum topk_k(g)    topk_k(g) W~        eqs. 7.4-7.5, 8.3-8.5
==========  ===========================  ===============  ==================  ==================

Readings of the ambiguous points (``docs/methods.md`` has the passages and the evidence):

* The *weight adjoint* ``dLt/dW`` of eq. 7.4/7.6 is the layer input ``x`` (each weight
  ``W[o, i]`` multiplies ``x[i]``), so ``topk(dLt/dW)`` keeps the ``k`` largest-magnitude
  inputs: the weight gradient becomes the outer product of two sparse vectors.
* The *perceptron adjoint* ``dLt/dP_{i-1}`` of eq. 7.5 is ``W`` itself. ``topk`` of it is
  read per output neuron: ``W~`` keeps, in every row of ``W``, the ``k`` largest-magnitude
  incoming weights. Combined with the ``k`` selected sensitivities, the input gradient
  costs ``O(k^2)`` multiply-adds per example, the complexity of the thesis' section 9.5.1.
* Eq. 7.3 (bias) is unchanged by 7.4-7.6, so every sparse rule uses ``sum topk(g)``.

Scopes. ``scope="sample"`` takes the top-k separately for every example's vectors, the
thesis' per-vector definition. ``scope="batch"`` chooses one index set for the whole
mini-batch from the magnitudes summed over the batch (meProp's "unified" top-k, used by
meProp's PyTorch code). Only the batch scope lets the products run as small dense matrix
products on gathered rows/columns, and that is how it is computed here (gather, compact
matmul, scatter); the sample scope is the exact reference mode and uses masks on dense
products.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from asym_sweep.engine.fused import FusedSpec
from asym_sweep.engine.gradients import dense_backward_madds, dense_grads, row_block_grads
from asym_sweep.engine.rule import SCOPES, BackwardRule, check_k, register_rule, timed
from asym_sweep.rules.families import OneK, SelectedSensitivities
from asym_sweep.selection import gather_rows, topk_columns, topk_rows


@register_rule("dense")
@dataclass
class Dense(BackwardRule):
    """Ordinary backpropagation (thesis ch. 5); symmetric training."""

    autograd_native: ClassVar[bool] = True

    def backward(self, g, x, weight, needs, clock):  # type: ignore[override]
        return dense_grads(g, x, weight, needs)

    def backward_madds(self, batch: int, n_in: int, n_out: int, input_grad: bool) -> int:
        return dense_backward_madds(batch, n_in, n_out, input_grad)


@register_rule("topk")
@dataclass(kw_only=True)
class TopK(SelectedSensitivities, OneK):
    """meProp / thesis eqs. 7.1-7.3 with a fixed k."""

    def current_k(self, n_out: int) -> int:
        return min(self.k, n_out)

    def fused_spec(self) -> FusedSpec | None:
        # The batch scope's gather-multiply-scatter is fused.cpp's "topk"; the per-example masks are not.
        return FusedSpec("topk", self.k) if self.scope == "batch" and type(self) is TopK else None


def check_scope(name: str, value: object) -> None:
    """A per-attribute scope: ``sample``, ``batch``, or None (the rule's own `scope`)."""
    if value is not None and value not in SCOPES:
        raise ValueError(f"{name} must be one of {', '.join(SCOPES)} or null (the method's scope), got {value!r}")


@register_rule("partial")
@dataclass(kw_only=True)
class Partial(BackwardRule):
    """Partial connectivity (thesis eq. 7.6, 8.7-8.9): k1 sensitivities, k2 inputs for dW.

    ``x_scope`` selects the inputs per example or per mini-batch apart from the sensitivities
    (``scope``); None selects both alike. With batch-scope rows and per-example inputs the
    weight gradient is still one compact product on the k1 selected rows, its inputs masked.
    """

    k1: int
    k2: int
    x_scope: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_k("k1", self.k1)
        check_k("k2", self.k2)
        check_scope("x_scope", self.x_scope)

    def backward(self, g, x, weight, needs, clock):  # type: ignore[override]
        x_each = (self.x_scope or self.scope) == "sample"
        with timed(clock):
            # eq. 8.7: the neurons (rows) kept by the sensitivity; eq. 8.8: the inputs kept by the weight adjoint.
            rows = None if self.scope == "sample" else topk_columns(g, self.k1)
            g = topk_rows(g, self.k1) if self.scope == "sample" else g
            if not needs.weight:
                xs, cols = x, None
            elif x_each:
                xs, cols = topk_rows(x, self.k2, needs.input_nonnegative), None
            else:
                xs, cols = x, topk_columns(x, self.k2, needs.input_nonnegative)
        # rows None (per-example g) and cols None (per-example x): the masked dense products.
        return row_block_grads(g, xs, weight, needs, rows, cols)

    def fused_spec(self) -> FusedSpec | None:
        if self.scope != "batch" or type(self) is not Partial:
            return None
        return FusedSpec("partial", self.k1, self.k2, (self.x_scope or self.scope) == "sample")

    def backward_madds(self, batch: int, n_in: int, n_out: int, input_grad: bool) -> int:
        k1, k2 = min(self.k1, n_out), min(self.k2, n_in)
        return batch * k1 * k2 + (batch * k1 * n_in if input_grad else 0)

    def keeps_everything(self, n_in: int, n_out: int) -> bool:
        return self.k1 >= n_out and self.k2 >= n_in


# Complete's neuron set (eq. 8.3), in the readings the text supports (docs/methods.md):
# rows: the neurons of topk(g); the perceptron adjoint sparsified per neuron (W~, eq. 7.5);
# union: topk(g) united with the k neurons of largest incoming-weight magnitude, full rows of W;
# union_params: that union, and the input gradient only through the parameters of eq. 8.5.
NEURON_SETS = ("rows", "union", "union_params")


@register_rule("complete")
@dataclass(kw_only=True)
class Complete(OneK):
    """Complete sparsification (thesis eqs. 7.4-7.5, 8.3-8.5): top-k of g, x and the perceptron
    adjoint W; ``neurons`` reads eq. 8.3's union (`NEURON_SETS`), ``x_scope`` as in `Partial`."""

    neurons: str = "rows"
    x_scope: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.neurons not in NEURON_SETS:
            raise ValueError(f"neurons must be one of {', '.join(NEURON_SETS)}, got {self.neurons!r}")
        check_scope("x_scope", self.x_scope)

    def backward(self, g, x, weight, needs, clock):  # type: ignore[override]
        if self.neurons == "rows":
            return self._rows(g, x, weight, needs, clock)
        return self._union(g, x, weight, needs, clock)

    def _select_x(self, x: Tensor, needs) -> tuple[Tensor, Tensor | None]:
        """eq. 8.4: the inputs kept by the weight adjoint, as a masked ``x`` (per example) or column indices."""
        if not needs.weight and self.neurons != "union_params":
            return x, None
        if (self.x_scope or self.scope) == "sample":
            return topk_rows(x, self.k, needs.input_nonnegative), None
        return x, topk_columns(x, self.k, needs.input_nonnegative)

    def _rows(self, g, x, weight, needs, clock):
        with timed(clock):
            xs, cols = self._select_x(x, needs)
            if self.scope == "sample":
                g, rows = topk_rows(g, self.k), None
                w_tilde = topk_rows(weight, self.k) if needs.input else None
            else:
                rows = topk_columns(g, self.k)
                # W~ is only needed on the selected rows: the others meet a zero sensitivity.
                w_tilde = topk_rows(gather_rows(weight, rows), self.k) if needs.input else None
        return row_block_grads(g, xs, weight, needs, rows, cols, w_tilde)

    def _union(self, g, x, weight, needs, clock):
        with timed(clock):
            xs, cols = self._select_x(x, needs)
            by_weight = topk_columns(weight.t(), self.k)  # the k neurons of largest summed |incoming weight|
            if self.scope == "sample":
                keep = topk_rows(g, self.k) != 0
                if by_weight is not None:
                    keep[:, by_weight] = True
                g = torch.where(keep, g, torch.zeros((), dtype=g.dtype, device=g.device))
                rows = None
            else:
                by_g = topk_columns(g, self.k)
                rows = None if by_g is None or by_weight is None else torch.unique(torch.cat((by_g, by_weight)))
        grads = row_block_grads(g, xs, weight, needs, rows, cols)
        if self.neurons == "union_params" and grads.input is not None:
            # eq. 8.5: back-propagate only through the kept parameters, the kept neurons' weights
            # at the kept inputs: the previous layer's gradient is zero at every other input.
            grad_x = grads.input * (xs != 0) if cols is None else _only_cols(grads.input, cols)
            grads = grads._replace(input=grad_x)
        return grads

    def fused_spec(self) -> FusedSpec | None:
        # The rows reading (W~ per selected neuron) at batch scope; the union readings stay in Python.
        if self.scope != "batch" or self.neurons != "rows" or type(self) is not Complete:
            return None
        return FusedSpec("complete", self.k, self.k, (self.x_scope or self.scope) == "sample")

    def backward_madds(self, batch: int, n_in: int, n_out: int, input_grad: bool) -> int:
        k_out, k_in = min(self.k, n_out), min(self.k, n_in)
        if self.neurons == "rows":
            return batch * k_out * k_in * (2 if input_grad else 1)
        k_union = min(2 * self.k, n_out)  # at most: the union of two k-sets
        return batch * k_union * k_in + (
            batch * k_union * (k_in if self.neurons == "union_params" else n_in) if input_grad else 0
        )

    def keeps_everything(self, n_in: int, n_out: int) -> bool:
        return self.k >= n_out and self.k >= n_in


def _only_cols(grad_x: Tensor, cols: Tensor) -> Tensor:
    out = torch.zeros_like(grad_x)
    out[:, cols] = grad_x[:, cols]
    return out
