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


from asym_sweep.backward import (
    BackwardRule,
    OneK,
    SelectedSensitivities,
    check_k,
    dense_backward_madds,
    dense_grads,
    register_rule,
    row_block_grads,
    timed,
)
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


@register_rule("partial")
@dataclass(kw_only=True)
class Partial(BackwardRule):
    """Partial connectivity (thesis eq. 7.6, 8.7-8.9): k1 sensitivities, k2 inputs for dW."""

    k1: int
    k2: int

    def __post_init__(self) -> None:
        super().__post_init__()
        check_k("k1", self.k1)
        check_k("k2", self.k2)

    def backward(self, g, x, weight, needs, clock):  # type: ignore[override]
        if self.scope == "sample":
            with timed(clock):
                g = topk_rows(g, self.k1)
                xs = topk_rows(x, self.k2, needs.input_nonnegative) if needs.weight else x
            return dense_grads(g, xs, weight, needs)
        with timed(clock):
            rows = topk_columns(g, self.k1)
            cols = topk_columns(x, self.k2, needs.input_nonnegative) if needs.weight else None
        return row_block_grads(g, x, weight, needs, rows, cols)

    def backward_madds(self, batch: int, n_in: int, n_out: int, input_grad: bool) -> int:
        k1, k2 = min(self.k1, n_out), min(self.k2, n_in)
        return batch * k1 * k2 + (batch * k1 * n_in if input_grad else 0)

    def keeps_everything(self, n_in: int, n_out: int) -> bool:
        return self.k1 >= n_out and self.k2 >= n_in


@register_rule("complete")
@dataclass
class Complete(OneK):
    """Complete sparsification (thesis eqs. 7.4-7.5, 8.3-8.5): top-k of g, x and each row of W."""

    def backward(self, g, x, weight, needs, clock):  # type: ignore[override]
        if self.scope == "sample":
            with timed(clock):
                g = topk_rows(g, self.k)
                xs = topk_rows(x, self.k, needs.input_nonnegative) if needs.weight else x
                w_tilde = topk_rows(weight, self.k) if needs.input else weight
            return dense_grads(g, xs, w_tilde, needs)
        with timed(clock):
            rows = topk_columns(g, self.k)
            cols = topk_columns(x, self.k, needs.input_nonnegative) if needs.weight else None
            # W~ is only needed on the selected rows: the others meet a zero sensitivity.
            w_sel = topk_rows(gather_rows(weight, rows), self.k) if needs.input else None
        return row_block_grads(g, x, weight, needs, rows, cols, w_sel)

    def backward_madds(self, batch: int, n_in: int, n_out: int, input_grad: bool) -> int:
        k_out, k_in = min(self.k, n_out), min(self.k, n_in)
        return batch * k_out * k_in * (2 if input_grad else 1)

    def keeps_everything(self, n_in: int, n_out: int) -> bool:
        return self.k >= n_out and self.k >= n_in
