"""What a rule computes with: what autograd asks of a layer (`Needs`), what a rule returns
(`LinearGrads`), the gradient formulas of a linear layer (thesis eqs. 7.1-7.6) and the
multiply-adds of dense backpropagation. The interface that uses them is `engine.rule`.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from asym_sweep.selection import gather_cols, gather_rows


class LinearGrads(NamedTuple):
    """Gradients of one linear layer; ``None`` where autograd did not ask.

    With ``rows`` set, ``weight`` and ``bias`` are *compact*: only the listed
    rows (output neurons), every other row being zero. With ``cols`` set too,
    ``weight`` is compact in both directions: the ``(len(rows), len(cols))``
    block at those rows and columns (partial and complete connectivity's
    outer products), every other entry zero. The autograd function then
    scatters them, or writes them into a `autograd.GradSink` without touching
    the zero rows at all.
    """

    input: Tensor | None
    weight: Tensor | None
    bias: Tensor | None
    rows: Tensor | None = None
    cols: Tensor | None = None


class Needs(NamedTuple):
    """Which of (input, weight, bias) autograd needs a gradient for, and one fact about ``x``.

    ``input_nonnegative`` says the layer's input can hold no negative entry (the MLP's
    hidden layers read ReLU outputs; the training data are pixels in [0, 1]). Rules may
    then rank entries of ``x`` by ``x`` itself instead of ``|x|`` (``selection.py``).
    """

    input: bool
    weight: bool
    bias: bool
    input_nonnegative: bool = False


def dense_grads(g: Tensor, x: Tensor, weight: Tensor, needs: Needs) -> LinearGrads:
    """Eqs. 7.1-7.3 with whatever ``g``, ``x`` and ``weight`` the caller has already masked."""
    return LinearGrads(
        g @ weight if needs.input else None,
        g.t() @ x if needs.weight else None,
        g.sum(0) if needs.bias else None,
    )


def row_block_grads(
    g: Tensor,
    x: Tensor,
    weight: Tensor,
    needs: Needs,
    rows: Tensor | None,
    cols: Tensor | None = None,
    w_tilde: Tensor | None = None,
) -> LinearGrads:
    """Eqs. 7.1-7.3 when only the sensitivities of output neurons ``rows`` propagate (batch scope);
    with ``cols``, eqs. 7.4/7.6: only the inputs ``cols`` enter the weight gradient; with
    ``w_tilde`` (complete, eq. 7.5), the sparsified selected rows of the weight replace them
    in the input gradient.

    Computed on gathered blocks (batch, k): no product touches a dropped neuron or
    input, and the weight and bias gradients come back compact (see `LinearGrads`).
    """
    gc = gather_cols(g, rows)  # (batch, k_rows)
    grad_x = None
    if needs.input:
        grad_x = gc @ (w_tilde if w_tilde is not None else gather_rows(weight, rows))
    return LinearGrads(
        grad_x,
        gc.t() @ gather_cols(x, cols) if needs.weight else None,  # (k_rows, k_cols)
        gc.sum(0) if needs.bias else None,
        rows,
        cols,
    )


# ---------------------------------------------------------------------------
# FLOP formulas of dense backpropagation
# ---------------------------------------------------------------------------


def dense_forward_madds(batch: int, n_in: int, n_out: int) -> int:
    """Multiply-adds of ``x W^T`` for a batch."""
    return batch * n_in * n_out


def dense_backward_madds(batch: int, n_in: int, n_out: int, input_grad: bool) -> int:
    """Multiply-adds of ``g^T x`` and, when the layer's input needs one, ``g W``."""
    return batch * n_out * n_in * (2 if input_grad else 1)
