"""Sparsified backpropagation for a linear layer: the backward rules of the thesis.

A layer computes ``Lt = x W^T + b`` (``W`` is ``(out, in)`` as in ``nn.Linear``).
For the thesis' rules the forward pass is the ordinary dense map; only the backward pass is
sparsified ("asymmetric training", thesis ch. 8). With ``g = dL/dLt`` the
*sensitivity* of the layer (thesis 5.2.3.1) and ``topk_k(v)`` keeping the ``k``
largest-magnitude entries of a vector (sign ignored; ``k >= len(v)`` keeps all):

==========  ===========================  ===============  ==================  ==================
method      grad of W                    grad of b        grad of x           thesis
==========  ===========================  ===============  ==================  ==================
dense       g^T x                        sum g            g W                 ch. 5
topk        topk_k(g)^T x                sum topk_k(g)    topk_k(g) W         eqs. 7.1-7.3, 8.1
partial     topk_k1(g)^T topk_k2(x)      sum topk_k1(g)   topk_k1(g) W        eq. 7.6, 8.7-8.9
complete    topk_k(g)^T topk_k(x)        sum topk_k(g)    topk_k(g) W~        eqs. 7.4-7.5, 8.3-8.5
==========  ===========================  ===============  ==================  ==================

Readings of the ambiguous points (also in the README):

* The *weight adjoint* ``dLt/dW`` of eq. 7.4/7.6 is the layer input ``x`` (each
  weight ``W[o, i]`` multiplies ``x[i]``), so ``topk(dLt/dW)`` keeps the ``k``
  largest-magnitude inputs: the weight gradient becomes the outer product of two
  sparse vectors.
* The *perceptron adjoint* ``dLt/dP_{i-1}`` of eq. 7.5 is ``W`` itself.
  ``topk`` of it is read per output neuron: ``W~`` keeps, in every row of ``W``,
  the ``k`` largest-magnitude incoming weights. Combined with the ``k`` selected
  sensitivities, the input gradient costs ``O(k^2)`` multiply-adds per example,
  which is the complexity the thesis derives in section 9.5.1.
* Eq. 7.3 (bias) is unchanged by 7.4-7.6, so every sparse rule uses
  ``sum topk(g)`` for the bias.

Scopes. ``scope="sample"`` takes the top-k separately for every example's
vectors, the thesis' per-vector definition. ``scope="batch"`` chooses one index
set for the whole mini-batch from the magnitudes summed over the batch (meProp's
"unified" top-k, used by meProp's PyTorch code). Only the batch scope lets the
products run as small dense matrix products on gathered rows/columns, and that
is how it is computed here (gather, compact matmul, scatter); the sample scope is
the exact reference mode and uses masks on dense products.

Adding a rule: subclass `BackwardRule`, decorate it with `register_rule`, and
add ``conf/method/<name>.yaml``; a rule in a module of its own is listed in
``rules.py``, which registers SWAT/SAW (``swat.py``), meProp's variants
(``meprop.py``) and VR-PGE (``vrpge.py``). Rules with state use the hooks of
`BackwardRule` (``start_step``, ``start_epoch``, ``end_epoch``, ``state_dict``);
nothing in the model or the training loop changes.
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, ContextManager, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from asym_sweep.timing import Stopwatch

SCOPES = ("sample", "batch")


class LinearGrads(NamedTuple):
    """Gradients of one linear layer; ``None`` where autograd did not ask.

    With ``rows`` set, ``weight`` and ``bias`` are *compact*: only the listed
    rows (output neurons), every other row being zero. With ``cols`` set too,
    ``weight`` is compact in both directions: the ``(len(rows), len(cols))``
    block at those rows and columns (partial and complete connectivity's
    outer products), every other entry zero. The autograd function then
    scatters them, or writes them into a `GradSink` without touching the zero
    rows at all.
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
    then rank entries of ``x`` by ``x`` itself instead of ``|x|``: the same order and the
    same selected values, one elementwise pass fewer (see `topk_columns`).
    """

    input: bool
    weight: bool
    bias: bool
    input_nonnegative: bool = False


# ---------------------------------------------------------------------------
# top-k selection helpers
# ---------------------------------------------------------------------------


# Non-negative IEEE floats order exactly as their bit patterns read as signed integers
# of the same width (+0 lowest, NaN above +inf, as topk ranks NaN), and torch.topk runs
# faster on integers: 0.59 ms against 0.90 ms for complete's row-wise top-170 of a
# (170, 1024) block on 2 threads (interleaved medians). Same selection, cheaper.
_SAME_WIDTH_INT = {torch.float32: torch.int32, torch.float64: torch.int64,
                   torch.float16: torch.int16, torch.bfloat16: torch.int16}


def magnitudes(v: Tensor, nonnegative: bool = False) -> Tensor:
    """``|v|``; ``v`` itself when the caller knows it has no negative entry (`Needs`).

    The two differ only on a -0.0 entry, which sums and compares equal to +0.0 (as an
    integer key, `magnitude_keys`, it ranks lowest: still a zero magnitude).
    """
    return v if nonnegative else v.abs()


def magnitude_keys(v: Tensor, nonnegative: bool = False) -> Tensor:
    """``|v|`` in a form whose order is the order of magnitudes (integer bits where possible)."""
    a = magnitudes(v, nonnegative)
    int_dtype = _SAME_WIDTH_INT.get(a.dtype)
    return a.view(int_dtype) if int_dtype is not None and a.is_contiguous() else a


def topk_rows(v: Tensor, k: int, nonnegative: bool = False) -> Tensor:
    """Keep the ``k`` largest-magnitude entries of every row of ``v``, zero the rest."""
    if k >= v.shape[-1]:
        return v
    idx = magnitude_keys(v, nonnegative).topk(k, dim=-1, sorted=False).indices
    return torch.zeros_like(v).scatter_(-1, idx, v.gather(-1, idx))


def topk_columns(v: Tensor, k: int, nonnegative: bool = False) -> Tensor | None:
    """Indices of the ``k`` columns of ``v`` with the largest summed magnitude.

    Returns None when ``k`` covers every column, so callers can take the dense
    path without gathering. ``nonnegative``: the caller knows ``v`` has no negative
    entry, and the column sums of ``v`` are those of ``|v|`` (a -0.0 entry adds as +0.0
    does and -0.0 ranks equal to +0.0), so the selection is the same without ``abs``.
    """
    if k >= v.shape[-1]:
        return None
    # Skipping abs for a known non-negative input: inside a training step on l3-1024 the
    # abs pass over a (50, 1024) input cost about 30 us a layer (cold, freshly allocated
    # output), far above its warm 4 us; partial's selection went from 0.49 to 0.38 ms a
    # step, complete's from 2.68 to 2.59 ms (interleaved A/B, four sparse layers).
    s = magnitudes(v, nonnegative).sum(0)
    # Unsorted: sorting made no gather or scatter faster and cost its own time
    # (interleaved A/B on l3-1024: top-k backward 1.24 ms unsorted, 1.34 ms sorted).
    return s.topk(k, sorted=False).indices


def _gather_cols(v: Tensor, idx: Tensor | None) -> Tensor:
    return v if idx is None else v.index_select(1, idx)


def _gather_rows(v: Tensor, idx: Tensor | None) -> Tensor:
    return v if idx is None else v.index_select(0, idx)


def _scatter_rows(block: Tensor, idx: Tensor | None, n_rows: int) -> Tensor:
    """Place the rows of ``block`` at row indices ``idx`` of a zero ``(n_rows, ...)`` tensor."""
    if idx is None:
        return block
    out = block.new_zeros((n_rows,) + tuple(block.shape[1:]))
    return out.index_copy_(0, idx, block)


def _scatter_cols(block: Tensor, idx: Tensor | None, n_cols: int) -> Tensor:
    if idx is None:
        return block
    out = block.new_zeros((block.shape[0], n_cols))
    return out.index_copy_(1, idx, block)


def _timed(clock: Stopwatch | None) -> ContextManager[None]:
    return clock.measure() if clock is not None else nullcontext()


def _check_k(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}; a k at or above a layer's width keeps every entry "
                         "(for dense backprop use method=dropout, with method.dropout=0 for no dropout)")


# ---------------------------------------------------------------------------
# rules
# ---------------------------------------------------------------------------


@dataclass
class BackwardRule:
    """How one linear layer computes its gradients.

    Subclasses are dataclasses whose fields are the rule's parameters (``k``,
    ...); `scope` is shared by all. ``autograd_native`` rules let PyTorch's own
    autograd do the backward (no custom Function, no overhead).
    """

    scope: str = "batch"

    name: ClassVar[str] = ""
    autograd_native: ClassVar[bool] = False
    # A rule whose training step is not "forward, backward, optimizer step" names
    # its `asym_sweep.procedure.Procedure` subclass here (VR-PGE); None: the standard one.
    procedure: ClassVar[type | None] = None
    # True when backward_madds/forward_madds report what the last call kept (data-dependent
    # k, thresholds); otherwise they are cached per batch size between epochs.
    madds_depend_on_data: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"unknown scope {self.scope!r}; choose one of {', '.join(SCOPES)}")

    def params(self) -> dict[str, Any]:
        """The rule's own parameters (everything but the scope)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "scope"}

    def forward_weight(self, weight: Tensor) -> Tensor:
        """The weight the forward pass multiplies by; the backward receives this one too.

        The thesis' rules keep the forward dense (the identity); SWAT (``swat.py``)
        returns its top-K% weights here.
        """
        return weight

    def backward(
        self, g: Tensor, x: Tensor, weight: Tensor, needs: Needs, clock: Stopwatch | None
    ) -> LinearGrads:
        """Gradients from a 2-D sensitivity ``g`` (batch, out) and input ``x`` (batch, in)."""
        raise NotImplementedError

    def backward_madds(self, batch: int, n_in: int, n_out: int, input_grad: bool) -> float:
        """Analytical multiply-adds of the weight and input gradient products.

        Rules whose selection size depends on the data (norm-limited k, threshold
        reuse) count what their last backward call actually kept.
        """
        raise NotImplementedError

    def forward_madds(self, batch: int, n_in: int, n_out: int) -> float:
        """Multiply-adds of the forward product (dense unless the rule sparsifies the forward)."""
        return batch * n_in * n_out

    # Hooks for rules with state (k annealing, threshold reuse). The training
    # procedure (``procedure.py``) calls them; stateless rules ignore them.

    def start_step(self, step: int) -> None:
        """A training step (0-based, counted over the whole run) is about to start."""

    def start_epoch(self, epoch: int, n_epochs: int) -> None:
        """Training epoch ``epoch`` (0-based) of ``n_epochs`` is about to start."""

    def end_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Epoch ``epoch`` ended with these metrics (``val_loss``, ``val_acc``, ...)."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold for a resumed run to continue exactly."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    def notes(self) -> dict[str, Any]:
        """Scalars worth recording with each epoch's results (e.g. an annealed k)."""
        return {}

    def check_training(self, n_epochs: int) -> None:
        """Raise `ValueError` if the rule cannot run for ``n_epochs`` (checked before training)."""

    def keeps_everything(self, n_in: int, n_out: int) -> bool:
        """True when, on an ``(n_in -> n_out)`` layer, the rule selects every entry and so *is*
        dense backprop (e.g. top-k with k=40 on the 10-unit output layer). Such layers use
        PyTorch's own autograd, which saves the custom function's per-call overhead."""
        return False


RULES: dict[str, type[BackwardRule]] = {}


def register_rule(name: str) -> Callable[[type[BackwardRule]], type[BackwardRule]]:
    def add(cls: type[BackwardRule]) -> type[BackwardRule]:
        if name in RULES:
            raise ValueError(f"backward rule {name!r} is registered twice")
        cls.name = name
        RULES[name] = cls
        return cls

    return add


def dense_grads(g: Tensor, x: Tensor, weight: Tensor, needs: Needs) -> LinearGrads:
    """Eq. 7.1-7.3 with whatever ``g``, ``x`` and ``weight`` the caller has already masked."""
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
    gc = _gather_cols(g, rows)  # (batch, k_rows)
    grad_x = None
    if needs.input:
        grad_x = gc @ (w_tilde if w_tilde is not None else _gather_rows(weight, rows))
    return LinearGrads(
        grad_x,
        gc.t() @ _gather_cols(x, cols) if needs.weight else None,  # (k_rows, k_cols)
        gc.sum(0) if needs.bias else None,
        rows,
        cols,
    )


@register_rule("dense")
@dataclass
class Dense(BackwardRule):
    """Ordinary backpropagation (thesis ch. 5); symmetric training."""

    autograd_native: ClassVar[bool] = True

    def backward(self, g, x, weight, needs, clock):  # type: ignore[override]
        return dense_grads(g, x, weight, needs)

    def backward_madds(self, batch: int, n_in: int, n_out: int, input_grad: bool) -> int:
        return batch * n_out * n_in * (2 if input_grad else 1)


@dataclass(kw_only=True)
class _OneK(BackwardRule):
    """Base of the rules with a single selection size ``k``."""

    k: int

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_k("k", self.k)


class SelectedSensitivities(BackwardRule):
    """meProp's backward (thesis eqs. 7.1-7.3): only the `current_k` largest sensitivities
    of a layer propagate. `TopK` fixes k; the rules of ``meprop.py`` choose it by layer
    width or anneal it over training (overriding `current_k`), or choose the entries
    at random (overriding the two selectors)."""

    def current_k(self, n_out: int) -> int:
        """The k in force for a layer of ``n_out`` neurons, at most ``n_out``."""
        raise NotImplementedError

    def select_each(self, g: Tensor, k: int) -> Tensor:
        """Sample scope: ``g`` with ``k`` entries of every row kept (by magnitude here)."""
        return topk_rows(g, k)

    def select_columns(self, g: Tensor, k: int) -> Tensor | None:
        """Batch scope: the ``k`` output neurons kept for the whole batch (None: all)."""
        return topk_columns(g, k)

    def backward(self, g, x, weight, needs, clock):  # type: ignore[override]
        k = self.current_k(g.shape[1])
        if self.scope == "sample":
            with _timed(clock):
                g = self.select_each(g, k)
            return dense_grads(g, x, weight, needs)
        with _timed(clock):
            rows = self.select_columns(g, k)
        return row_block_grads(g, x, weight, needs, rows)

    def backward_madds(self, batch: int, n_in: int, n_out: int, input_grad: bool) -> int:
        return batch * self.current_k(n_out) * n_in * (2 if input_grad else 1)

    def keeps_everything(self, n_in: int, n_out: int) -> bool:
        return self.current_k(n_out) >= n_out


@register_rule("topk")
@dataclass(kw_only=True)
class TopK(SelectedSensitivities, _OneK):
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
        _check_k("k1", self.k1)
        _check_k("k2", self.k2)

    def backward(self, g, x, weight, needs, clock):  # type: ignore[override]
        if self.scope == "sample":
            with _timed(clock):
                g = topk_rows(g, self.k1)
                xs = topk_rows(x, self.k2, needs.input_nonnegative) if needs.weight else x
            return LinearGrads(
                g @ weight if needs.input else None,
                g.t() @ xs if needs.weight else None,
                g.sum(0) if needs.bias else None,
            )
        with _timed(clock):
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
class Complete(_OneK):
    """Complete sparsification (thesis eqs. 7.4-7.5, 8.3-8.5): top-k of g, x and each row of W."""

    def backward(self, g, x, weight, needs, clock):  # type: ignore[override]
        if self.scope == "sample":
            with _timed(clock):
                g = topk_rows(g, self.k)
                xs = topk_rows(x, self.k, needs.input_nonnegative) if needs.weight else x
                w_tilde = topk_rows(weight, self.k) if needs.input else weight
            return LinearGrads(
                g @ w_tilde if needs.input else None,
                g.t() @ xs if needs.weight else None,
                g.sum(0) if needs.bias else None,
            )
        with _timed(clock):
            rows = topk_columns(g, self.k)
            cols = topk_columns(x, self.k, needs.input_nonnegative) if needs.weight else None
            # W~ is only needed on the selected rows: the others meet a zero sensitivity.
            w_sel = topk_rows(_gather_rows(weight, rows), self.k) if needs.input else None
        return row_block_grads(g, x, weight, needs, rows, cols, w_sel)

    def backward_madds(self, batch: int, n_in: int, n_out: int, input_grad: bool) -> int:
        k_out, k_in = min(self.k, n_out), min(self.k, n_in)
        return batch * k_out * k_in * (2 if input_grad else 1)

    def keeps_everything(self, n_in: int, n_out: int) -> bool:
        return self.k >= n_out and self.k >= n_in


# ---------------------------------------------------------------------------
# construction and the autograd function
# ---------------------------------------------------------------------------


def registered_rules() -> dict[str, type[BackwardRule]]:
    """Every rule by name, including those of the other rule modules (``rules.py`` lists them)."""
    import asym_sweep.rules  # noqa: F401  (imported here: those modules import this one)

    return RULES


def make_rule(method: str, scope: str = "batch", **params: Any) -> BackwardRule:
    """Build a registered rule, turning every kind of bad input into one `ValueError`."""
    registered_rules()
    if method not in RULES:
        raise ValueError(f"unknown method {method!r}; registered rules: {', '.join(sorted(RULES))}")
    cls = RULES[method]
    accepted = [f.name for f in dataclasses.fields(cls) if f.name != "scope"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no parameters"
        raise ValueError(f"method {method!r} does not take {', '.join(unknown)} (it takes {takes})")
    missing = [f.name for f in dataclasses.fields(cls) if _required(f) and params.get(f.name) is None]
    if missing:
        raise ValueError(f"method {method!r} needs {' and '.join(missing)}")
    return cls(scope=scope, **params)


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


class GradSink:
    """Reusable ``.grad`` buffers for row-sparse gradients (one per layer).

    A batch-scope sparse rule changes only k rows of a weight's gradient, but
    autograd needs a fresh full-size tensor, and zero-filling it cost more than
    the sparse products themselves (profiled: ``fill_`` was the largest part of
    top-k's backward on l3-1024). The sink keeps one buffer per parameter,
    re-zeroes only the rows it wrote last time, writes the new rows and sets
    ``param.grad`` to the buffer. If ``.grad`` already holds a gradient (no
    ``zero_grad`` in between), the rows are added to it, as autograd would.

    Used only through ``loss.backward()`` on leaf parameters (the training
    loop); ``torch.autograd.grad`` and the functional `sparse_linear` take the
    scatter path. Consequence: a ``.grad`` tensor is reused by the next step,
    so ``.clone()`` it to keep it.
    """

    def __init__(self) -> None:
        self._buffers: dict[int, Tensor] = {}
        self._dirty: dict[int, Tensor] = {}

    def write(self, param: Tensor, rows: Tensor, block: Tensor, cols: Tensor | None = None) -> None:
        """Set (or add to) ``param.grad``: ``block`` at ``rows`` (and ``cols``), zero elsewhere."""
        key = id(param)
        buf = self._buffers.get(key)
        grad = param.grad
        if grad is None:
            if buf is None or buf.shape != param.shape:
                buf = torch.zeros_like(param, memory_format=torch.contiguous_format)
                self._buffers[key] = buf
            else:
                buf.index_fill_(0, self._dirty[key], 0)
            _put(buf, rows, cols, block, accumulate=False)
            self._dirty[key] = rows
            param.grad = buf
        else:
            _put(grad, rows, cols, block, accumulate=True)
            if grad is buf:
                self._dirty[key] = torch.cat((self._dirty[key], rows))


def _put(dest: Tensor, rows: Tensor, cols: Tensor | None, block: Tensor, accumulate: bool) -> None:
    if cols is None:
        (dest.index_add_ if accumulate else dest.index_copy_)(0, rows, block)
    elif dest.is_contiguous():
        # The block as one flat scatter (rows and cols are distinct, so every target is
        # written once): 15 us against 21 us for index_put_ on partial's 40x200 block, 40
        # against 67 us on complete's 170x170 (interleaved medians); in a whole step on
        # l3-1024, complete's backward went from 3.74 to 3.71 ms (two interleaved A/Bs).
        flat = torch.add(cols, rows[:, None], alpha=dest.shape[1]).view(-1)
        target = dest.view(-1)
        (target.scatter_add_ if accumulate else target.scatter_)(0, flat, block.reshape(-1))
    else:
        dest.index_put_((rows[:, None], cols), block, accumulate=accumulate)


class _SparseLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, rule, clock, sink, nonnegative_input):  # type: ignore[override]
        # The backward sees the weight the forward used (SWAT's top-K% weights, Algorithm 1).
        used = rule.forward_weight(weight)
        ctx.save_for_backward(x, used)
        ctx.rule = rule
        ctx.clock = clock
        # The sink writes .grad directly, so it needs the parameters themselves (leaves only).
        ctx.params = (weight, bias) if sink is not None and weight.is_leaf and (bias is None or bias.is_leaf) else None
        ctx.sink = sink
        ctx.nonnegative_input = nonnegative_input
        return F.linear(x, used, bias)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        x, weight = ctx.saved_tensors
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
        if grads.rows is not None and ctx.params is not None and not torch.is_grad_enabled():
            w_param, b_param = ctx.params
            if grad_w is not None:
                ctx.sink.write(w_param, grads.rows, grad_w, grads.cols)
            if grad_b is not None:
                ctx.sink.write(b_param, grads.rows, grad_b)
            grad_w = grad_b = None
        else:
            n_out, n_in = weight.shape
            if grad_w is not None:
                grad_w = _scatter_rows(_scatter_cols(grad_w, grads.cols, n_in), grads.rows, n_out)
            if grad_b is not None:
                grad_b = _scatter_rows(grad_b, grads.rows, n_out)
        return grad_x, grad_w, grad_b, None, None, None, None


def apply_rule(
    rule: BackwardRule,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    clock: Stopwatch | None = None,
    sink: GradSink | None = None,
    nonnegative_input: bool = False,
) -> Tensor:
    """``F.linear(x, weight, bias)`` whose backward follows ``rule`` (optionally into a `GradSink`).

    ``nonnegative_input`` promises that ``x`` has no negative entry (see `Needs`); a false
    promise makes the rules that rank ``x`` choose by signed value, so only the caller who
    knows it by construction (a ReLU output, pixels in [0, 1]) sets it.
    """
    if rule.autograd_native:
        return F.linear(x, weight, bias)
    return _SparseLinearFunction.apply(x, weight, bias, rule, clock, sink, nonnegative_input)


def sparse_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    method: str,
    scope: str = "sample",
    **params: Any,
) -> Tensor:
    """``F.linear(x, weight, bias)`` whose backward follows ``method`` with its ``params``.

    The forward is exactly ``F.linear`` except for rules that sparsify the
    weights of the forward too (``swat``). See the module docstring for the
    thesis' rules. Raises `ValueError` on an unknown method or scope, a missing
    or invalid parameter, or a parameter the method does not take. A parameter
    given as None counts as not given.
    """
    given = {name: v for name, v in params.items() if v is not None}
    return apply_rule(make_rule(method, scope=scope, **given), x, weight, bias)

