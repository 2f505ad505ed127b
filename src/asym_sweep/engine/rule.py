"""The rule author's module: the interface a backward rule implements, the registry that makes
it known, the parameter checks and the selection clock. Rules live in ``asym_sweep/rules/`` (one
module per source document); the gradient formulas they compute with are `engine.gradients`,
the selection helpers `asym_sweep.selection`, the family bases `rules.families`.

A layer computes ``Lt = x W^T + b`` (``W`` is ``(out, in)`` as in ``nn.Linear``). With
``g = dL/dLt`` the layer's *sensitivity* (thesis 5.2.3.1), backpropagation (thesis ch. 5) is

    grad W = g^T x,    grad b = sum g,    grad x = g W

and a backward rule (a `BackwardRule`) replaces it by a sparsified version.

Adding a rule (README, "Adding a rule", has a worked example): a dataclass subclass of
`BackwardRule` in a module of ``rules/``, decorated with ``@register_rule("<name>")``; its fields
are its parameters (checked in ``__post_init__`` with `check_int`, `check_k`, `check_real`),
``backward`` returns its `LinearGrads`, ``backward_madds`` counts its multiply-adds. Then
``conf/method/<name>.yaml`` names it. It is built one way, `asym_sweep.rules.make_rule` (the
method files go through it too); ``tests/test_rules.py`` checks every registered rule.
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, ContextManager

from torch import Tensor

from asym_sweep.engine.fused import FusedSpec
from asym_sweep.engine.gradients import LinearGrads, Needs, dense_forward_madds
from asym_sweep.timing import Stopwatch

SCOPES = ("sample", "batch")


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

    def fused_spec(self) -> FusedSpec | None:
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


# ---------------------------------------------------------------------------
# parameter checks (one message style for every rule) and the selection clock
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


def timed(clock: Stopwatch | None) -> ContextManager[None]:
    """``with timed(clock):`` around a rule's selection (a no-op without a clock)."""
    return clock.measure() if clock is not None else nullcontext()
