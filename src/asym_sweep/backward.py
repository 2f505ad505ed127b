"""What a rule author may rely on: the rule interface, the registry, the gradient formulas of a
linear layer, parameter checks and the FLOP formula of dense backpropagation.

A layer computes ``Lt = x W^T + b`` (``W`` is ``(out, in)`` as in ``nn.Linear``). With
``g = dL/dLt`` the layer's *sensitivity* (thesis 5.2.3.1), backpropagation (thesis ch. 5) is

    grad W = g^T x,    grad b = sum g,    grad x = g W

and a backward rule (a `BackwardRule`) replaces it by a sparsified version: the thesis'
top-k, partial and complete asymmetry (``rules/thesis.py``), SWAT/SAW (``rules/swat.py``),
meProp's variants (``rules/meprop.py``), VR-PGE's learned masks (``rules/vrpge.py``).

Adding a rule: a dataclass subclass of `BackwardRule` in a module of ``rules/``, decorated
with ``@register_rule("<name>")``, and ``conf/method/<name>.yaml`` naming it. Nothing in the
model, the training loop, the sweep or the report changes; ``tests/test_rules.py`` checks the
new rule's shared behaviour on its own.
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, ContextManager, NamedTuple

from torch import Tensor

from asym_sweep.fused import FusedSpec
from asym_sweep.selection import gather_cols, gather_rows, topk_columns, topk_rows
from asym_sweep.timing import Stopwatch

SCOPES = ("sample", "batch")


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


@dataclass
class BackwardRule:
    """How one linear layer computes its gradients.

    Subclasses are dataclasses whose fields are the rule's parameters (``k``, ...);
    `scope` is shared by all. ``autograd_native`` rules let PyTorch's own autograd do the
    backward (no custom Function, no overhead).
    """

    scope: str = "batch"

    name: ClassVar[str] = ""
    autograd_native: ClassVar[bool] = False
    # False where the rule changes the forward pass too (SWAT's top-K% weights).
    dense_forward: ClassVar[bool] = True
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

        The thesis' rules keep the forward dense (the identity, thesis ch. 8: "no
        sparsification technique is used during the forward pass"); SWAT returns its
        top-K% weights here.
        """
        return weight

    def backward(self, g: Tensor, x: Tensor, weight: Tensor, needs: Needs, clock: Stopwatch | None) -> LinearGrads:
        """Gradients from a 2-D sensitivity ``g`` (batch, out) and input ``x`` (batch, in).

        ``clock`` times the selection of entries (the thesis' "max-heap" time, 9.3): wrap it
        in ``with timed(clock):``.
        """
        raise NotImplementedError

    def backward_madds(self, batch: int, n_in: int, n_out: int, input_grad: bool) -> float:
        """Analytical multiply-adds of the weight and input gradient products.

        Rules whose selection size depends on the data (norm-limited k, threshold
        reuse) count what their last backward call actually kept.
        """
        raise NotImplementedError

    def forward_madds(self, batch: int, n_in: int, n_out: int) -> float:
        """Multiply-adds of the forward product (dense unless the rule sparsifies the forward)."""
        return dense_forward_madds(batch, n_in, n_out)

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

    def fused_spec(self) -> "FusedSpec | None":
        """The parameters of the fused backward (`fused.cpp`) that computes exactly this rule's
        gradients, or None (the default) where there is none. Only the thesis' batch-scope rules
        have one; a subclass that changes what its parent computes must return None."""
        return None

    def keeps_everything(self, n_in: int, n_out: int) -> bool:
        """True when, on an ``(n_in -> n_out)`` layer, the rule selects every entry and so *is*
        dense backprop (e.g. top-k with k=40 on the 10-unit output layer). Such layers use
        PyTorch's own autograd, which saves the custom function's per-call overhead."""
        return False


# ---------------------------------------------------------------------------
# the registry
# ---------------------------------------------------------------------------

RULES: dict[str, type[BackwardRule]] = {}


def register_rule(name: str) -> Callable[[type[BackwardRule]], type[BackwardRule]]:
    """Class decorator: make a rule known by ``name`` (the ``rule:`` of a ``conf/method`` file)."""

    def add(cls: type[BackwardRule]) -> type[BackwardRule]:
        if name in RULES:
            raise ValueError(f"backward rule {name!r} is registered twice")
        cls.name = name
        RULES[name] = cls
        return cls

    return add


def build_rule(
    registry: dict[str, type[BackwardRule]], method: str, scope: str, params: dict[str, Any]
) -> BackwardRule:
    """A rule of ``registry``, turning every kind of bad input into one `ValueError`."""
    if method not in registry:
        raise ValueError(f"unknown method {method!r}; registered rules: {', '.join(sorted(registry))}")
    cls = registry[method]
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


# ---------------------------------------------------------------------------
# gradients of a linear layer
# ---------------------------------------------------------------------------


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


def timed(clock: Stopwatch | None) -> ContextManager[None]:
    """``with timed(clock):`` around a rule's selection (a no-op without a clock)."""
    return clock.measure() if clock is not None else nullcontext()


# ---------------------------------------------------------------------------
# FLOP formulas of dense backpropagation
# ---------------------------------------------------------------------------


def dense_forward_madds(batch: int, n_in: int, n_out: int) -> int:
    """Multiply-adds of ``x W^T`` for a batch."""
    return batch * n_in * n_out


def dense_backward_madds(batch: int, n_in: int, n_out: int, input_grad: bool) -> int:
    """Multiply-adds of ``g^T x`` and, when the layer's input needs one, ``g W``."""
    return batch * n_out * n_in * (2 if input_grad else 1)


# ---------------------------------------------------------------------------
# parameter checks (one message style for every rule)
# ---------------------------------------------------------------------------


def check_int(name: str, value: Any, minimum: int = 1, hint: str = "") -> None:
    """``value`` is an integer (a bool is not) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}{hint}")


def check_k(name: str, value: Any) -> None:
    """A selection size: an integer >= 1 (a k at or above a layer's width keeps all of it)."""
    check_int(
        name,
        value,
        1,
        "; a k at or above a layer's width keeps every entry "
        "(for dense backprop use method=dropout, with method.dropout=0 for no dropout)",
    )


def check_real(
    name: str, value: Any, low: float, high: float, *, low_closed: bool = False, high_closed: bool = True, why: str = ""
) -> None:
    """``value`` is a finite number (a bool is not) in the interval from ``low`` to ``high``."""
    interval = f"{'[' if low_closed else '('}{low:g}, {high:g}{']' if high_closed else ')'}"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low <= value if low_closed else low < value) and (value <= high if high_closed else value < high)
    if not ok:
        raise ValueError(f"{name} must be in {interval}{why}, got {value!r}")


# ---------------------------------------------------------------------------
# bases of rule families
# ---------------------------------------------------------------------------


@dataclass(kw_only=True)
class OneK(BackwardRule):
    """Base of the rules with a single selection size ``k``."""

    k: int

    def __post_init__(self) -> None:
        super().__post_init__()
        check_k("k", self.k)


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
            with timed(clock):
                g = self.select_each(g, k)
            return dense_grads(g, x, weight, needs)
        with timed(clock):
            rows = self.select_columns(g, k)
        return row_block_grads(g, x, weight, needs, rows)

    def backward_madds(self, batch: int, n_in: int, n_out: int, input_grad: bool) -> int:
        return batch * self.current_k(n_out) * n_in * (2 if input_grad else 1)

    def keeps_everything(self, n_in: int, n_out: int) -> bool:
        return self.current_k(n_out) >= n_out
