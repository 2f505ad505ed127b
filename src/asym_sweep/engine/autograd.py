"""The autograd function that runs a `BackwardRule`, and the one reusable gradient buffer.

The forward is ``F.linear`` (with the weight the rule's `forward_weight` returns); the
backward hands ``(g, x, W)`` to the rule and puts its gradients where autograd wants them:
scattered into full-size tensors, or, in training, written into a `GradSink` that touches
only the rows the rule selected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from asym_sweep.engine import fused
from asym_sweep.engine.gradients import Needs
from asym_sweep.engine.rule import BackwardRule
from asym_sweep.selection import scatter_cols, scatter_rows
from asym_sweep.timing import Stopwatch


class GradSink:
    """Reusable ``.grad`` buffers for row-sparse gradients (one sink per layer or model).

    A batch-scope sparse rule changes only k rows of a weight's gradient, but
    autograd needs a fresh full-size tensor, and zero-filling it cost more than
    the sparse products themselves (profiled: ``fill_`` was the largest part of
    top-k's backward on l3-1024). The sink keeps one buffer per parameter,
    re-zeroes only the rows it wrote last time, writes the new rows and sets
    ``param.grad`` to the buffer. If ``.grad`` already holds a gradient (no
    ``zero_grad`` in between, or a second block in the same step as VR-PGE's
    two sub-networks), the rows are added to it, as autograd would.

    Every `model.SparseLinear` has one, so a model of them trained in a plain
    ``loss.backward(); opt.step(); opt.zero_grad()`` loop gets it without set-up. It is used
    only where the backward accumulates into a leaf parameter's ``.grad``
    (`_accumulates`): ``torch.autograd.grad``, ``backward(inputs=...)`` for other tensors and
    the functional `sparse_linear` take the scatter path. Consequence: a ``.grad`` tensor is
    reused by the next step, so ``.clone()`` it to keep it.
    """

    def __init__(self) -> None:
        # Per parameter: its buffer and the rows written into it last (a tensor changed in place,
        # with set_, so that the fused backward, `fused.cpp`'s sink_write, keeps the same slot).
        self._slots: dict[int, tuple[Tensor, Tensor]] = {}

    def slot(self, param: Tensor) -> tuple[Tensor, Tensor]:
        """``(buffer, dirty rows)`` of ``param``: a fresh zero buffer where there is none of its shape."""
        key = id(param)
        found = self._slots.get(key)
        if found is None or found[0].shape != param.shape:
            found = (
                torch.zeros_like(param, memory_format=torch.contiguous_format),
                torch.empty(0, dtype=torch.long, device=param.device),
            )
            self._slots[key] = found
        return found

    def write(self, param: Tensor, rows: Tensor, block: Tensor, cols: Tensor | None = None) -> None:
        """Set (or add to) ``param.grad``: ``block`` at ``rows`` (and ``cols``), zero elsewhere."""
        grad = param.grad
        if grad is None:
            buf, dirty = self.slot(param)
            buf.index_fill_(0, dirty, 0)
            _put(buf, rows, cols, block, accumulate=False)
            dirty.set_(rows)
            param.grad = buf
        else:
            _put(grad, rows, cols, block, accumulate=True)
            found = self._slots.get(id(param))
            if found is not None and grad is found[0]:
                buf, dirty = found
                grown = torch.cat((dirty, rows))
                # A loop that never sets .grad to None (zero_grad(set_to_none=False)) would grow
                # this list step after step: past one entry per row, clear every row instead.
                dirty.set_(grown if len(grown) <= len(buf) else torch.arange(len(buf), device=buf.device))


def _put(dest: Tensor, rows: Tensor, cols: Tensor | None, block: Tensor, accumulate: bool) -> None:
    if cols is None:
        (dest.index_add_ if accumulate else dest.index_copy_)(0, rows, block)
    elif dest.is_contiguous():
        # The block as one flat scatter (rows and cols are distinct, so every target is
        # written once): cheaper than index_put_ on partial's and complete's blocks
        # (docs/performance.md, "Measurements behind choices in the code").
        flat = torch.add(cols, rows[:, None], alpha=dest.shape[1]).view(-1)
        target = dest.view(-1)
        (target.scatter_add_ if accumulate else target.scatter_)(0, flat, block.reshape(-1))
    else:
        dest.index_put_((rows[:, None], cols), block, accumulate=accumulate)


def _accumulates(ctx, index: int) -> bool:
    """Whether this backward pass accumulates into the ``.grad`` of the function's input ``index``
    (``loss.backward()``), rather than returning gradients (``torch.autograd.grad``).

    PyTorch offers no public way to ask; ``torch._C._will_engine_execute_node`` answers for the
    input's gradient accumulator and refuses, with a RuntimeError, under ``autograd.grad``
    (then: no). Where it is missing, the answer is no, and the slower scatter path is taken.
    """
    node = ctx.next_functions[index][0]
    if node is None or not hasattr(torch._C, "_will_engine_execute_node"):
        return False
    try:
        return bool(torch._C._will_engine_execute_node(node))
    except RuntimeError:
        return False


class _SparseLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, rule, clock, sink, nonnegative_input, use_fused):  # type: ignore[override]
        # The backward sees the weight the forward used (SWAT's top-K% weights, Algorithm 1).
        used = rule.forward_weight(weight)
        ctx.save_for_backward(x, used)
        ctx.rule = rule
        ctx.clock = clock
        # The sink writes .grad directly, so it needs the parameters themselves (leaves only).
        ctx.params = (weight, bias) if sink is not None and weight.is_leaf and (bias is None or bias.is_leaf) else None
        ctx.sink = sink
        ctx.nonnegative_input = nonnegative_input
        ctx.fused = rule.fused_spec() if use_fused else None
        return F.linear(x, used, bias)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        if ctx.fused is not None and _fusable(grad_out, x) and (lib := fused.module()) is not None:
            return _fused_backward(ctx, lib, grad_out, x, weight)
        needs = Needs(*ctx.needs_input_grad[:3], ctx.nonnegative_input)
        flat = x.dim() == 2  # the MLP's case: skip the reshapes
        g2 = grad_out if flat else grad_out.reshape(-1, grad_out.shape[-1])
        x2 = x if flat else x.reshape(-1, x.shape[-1])
        grads = ctx.rule.backward(g2, x2, weight, needs, ctx.clock)
        grad_x = grads.input
        if grad_x is not None and not flat:
            grad_x = grad_x.reshape(x.shape)
        grad_w, grad_b = grads.weight, grads.bias
        # create_graph (grad mode on) wants differentiable results: take the scatter path then.
        sink = grads.rows is not None and ctx.params is not None and not torch.is_grad_enabled()
        n_out, n_in = weight.shape
        if grad_w is not None:
            if sink and _accumulates(ctx, 1):
                ctx.sink.write(ctx.params[0], grads.rows, grad_w, grads.cols)
                grad_w = None
            else:
                grad_w = scatter_rows(scatter_cols(grad_w, grads.cols, n_in), grads.rows, n_out)
        if grad_b is not None:
            if sink and _accumulates(ctx, 2):
                ctx.sink.write(ctx.params[1], grads.rows, grad_b)
                grad_b = None
            else:
                grad_b = scatter_rows(grad_b, grads.rows, n_out)
        return grad_x, grad_w, grad_b, None, None, None, None, None


def _fusable(g: Tensor, x: Tensor) -> bool:
    """Whether the fused backward takes this call: 2-D float32 CPU tensors, no graph of the backward
    being built (create_graph takes the pure-torch path, whose results are differentiable)."""
    return (
        x.dim() == 2
        and g.device.type == "cpu"
        and g.dtype == torch.float32
        and x.dtype == torch.float32
        and not torch.is_grad_enabled()
    )


def _fused_backward(ctx, lib, g: Tensor, x: Tensor, weight: Tensor) -> tuple:
    """`_SparseLinearFunction.backward` in one call of the fused extension (`fused.cpp`): the same
    selection, products and sink writes, hence the same gradients."""
    spec, params, sink = ctx.fused, ctx.params, ctx.sink
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    w_slot = b_slot = (None, None)
    if params is not None:
        w_slot = sink.slot(params[0])
        b_slot = sink.slot(params[1]) if params[1] is not None else (None, None)
    helper = fused.helper()
    grad_x, grad_w, grad_b, select_s = lib.backward(
        fused.kind_code(spec.kind),
        spec.k,
        spec.kx,
        spec.x_each,
        ctx.nonnegative_input,
        g,
        x,
        weight,
        need_x,
        need_w,
        need_b,
        *(params or (None, None)),
        *w_slot,
        *b_slot,
        helper.address,
        helper.shares_threads,
        helper.ties_agree,
    )
    if ctx.clock is not None:
        ctx.clock.add(select_s)
    return grad_x, grad_w, grad_b, None, None, None, None, None


def apply_rule(
    rule: BackwardRule,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    clock: Stopwatch | None = None,
    sink: GradSink | None = None,
    nonnegative_input: bool = False,
    use_fused: bool = True,
) -> Tensor:
    """``F.linear(x, weight, bias)`` whose backward follows ``rule`` (optionally into a `GradSink`).

    ``nonnegative_input`` promises that ``x`` has no negative entry (see `Needs`); a false
    promise makes the rules that rank ``x`` choose by signed value, so only the caller who
    knows it by construction (a ReLU output, pixels in [0, 1]) sets it. ``use_fused``: take the
    fused backward (`fused`) where the rule has one and it could be built; False keeps the
    pure-torch path, the reference (same gradients).
    """
    if rule.autograd_native:
        return F.linear(x, weight, bias)
    return _SparseLinearFunction.apply(x, weight, bias, rule, clock, sink, nonnegative_input, use_fused)
