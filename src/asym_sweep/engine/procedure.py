"""Training procedures: what one training step does with the model and the optimizer.

The standard procedure is the thesis' (section 9.1.2) and serves every per-layer
rule: one forward pass, one backward pass in which each layer follows its rule,
one Adam step. It also drives the hooks of rules with state (`start_step`,
`start_epoch`, `end_epoch`, `state_dict`) and counts the multiply-adds each step
really did, so that data-dependent rules (norm-limited k, annealed k, threshold
reuse) report true FLOPs.

A rule whose step is not "forward, backward, step" registers its own procedure
for its rule class (``@register_procedure(RuleClass)``), as VR-PGE does with two
sampled sub-networks per step (``rules/vrpge.py``); the rule itself knows nothing
of procedures. The training loop (``train.py``) only calls a procedure's methods,
so such a method needs no change to the loop.

The model is anything with the `Layered` shape (``model.MLP`` is one): this module
sits below the model, beside the other parts of the engine, so that a rule module may
subclass `Procedure` without importing anything above itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asym_sweep.engine.rule import BackwardRule
from asym_sweep.timing import Stopwatch, Timers


class Layered(Protocol):
    """What a procedure needs of a model: its linear layers (each with a ``rule``, ``weight``,
    ``bias``, ``in_features`` and ``out_features``), its multiply-add counts, the switches for
    the selection clock and the gradient sinks, and the call."""

    layers: Sequence[nn.Module]

    def __call__(self, x: Tensor) -> Tensor: ...
    def set_clock(self, clock: Stopwatch | None) -> None: ...
    def use_grad_sinks(self, enabled: bool = True) -> None: ...
    def madds(self, batch: int, dense: bool = False) -> tuple[float, float]: ...
    def train(self, mode: bool = True) -> Any: ...
    def eval(self) -> Any: ...


@dataclass
class Madds:
    """Multiply-adds summed over the steps of a run, with dense backprop's for the same steps."""

    forward: float = 0.0
    backward: float = 0.0
    dense_forward: float = 0.0
    dense_backward: float = 0.0

    def add(self, forward: float, backward: float, dense_forward: float, dense_backward: float) -> None:
        self.forward += forward
        self.backward += backward
        self.dense_forward += dense_forward
        self.dense_backward += dense_backward

    def record(self) -> dict[str, float]:
        """The ``flops`` entry of ``result.json``."""
        return {
            "backward_madds": self.backward,
            "dense_backward_madds": self.dense_backward,
            "ratio_to_dense": self.backward / self.dense_backward if self.dense_backward else float("nan"),
            "forward_madds": self.forward,
            "dense_forward_madds": self.dense_forward,
            "train_ratio_to_dense": (self.forward + self.backward) / (self.dense_forward + self.dense_backward)
            if self.dense_backward
            else float("nan"),
        }


class Procedure:
    """The standard step: forward with loss, backward through each layer's rule, optimizer step."""

    def __init__(self, model: Layered, optimizer: torch.optim.Optimizer, timers: Timers, seed: int) -> None:
        self.model = model
        self.optimizer = optimizer
        self.timers = timers
        self.seed = seed
        self.step_count = 0
        self.madds = Madds()
        self._dense_cache: dict[int, tuple[int, int]] = {}
        # Rules time their selection on the run's "select" stopwatch, and since every
        # step ends in loss.backward() on leaf parameters, row-sparse gradients can
        # go into reused buffers (sparse.GradSink).
        model.set_clock(timers["select"])
        model.use_grad_sinks()
        self.rules: list[BackwardRule] = [layer.rule for layer in model.layers]
        # Per-step Python work is a visible share of a small model's step (docs/performance.md),
        # so only rules that use the hook are called, and static FLOP counts are cached.
        self._step_hooks = [r for r in self.rules if type(r).start_step is not BackwardRule.start_step]
        self._static_madds = not any(r.madds_depend_on_data for r in self.rules)
        self._madds_cache: dict[int, tuple[float, float]] = {}

    def step(self, xb: Tensor, yb: Tensor) -> Tensor:
        """One training step on a mini-batch; returns the (detached) mean loss."""
        for rule in self._step_hooks:
            rule.start_step(self.step_count)
        t = self.timers
        with t["forward"].measure():
            loss = F.cross_entropy(self.model(xb), yb)
        with t["backward"].measure():
            loss.backward()
        with t["optimizer"].measure():
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.count_model(len(yb))
        self.step_count += 1
        return loss.detach()

    def count_model(self, batch: int) -> None:
        """Add the model's multiply-adds for one step of this batch size (its rules' counts)."""
        if not self._static_madds:
            self.count(*self.model.madds(batch), batch)
            return
        if batch not in self._madds_cache:
            self._madds_cache[batch] = self.model.madds(batch)
        self.count(*self._madds_cache[batch], batch)

    def count(self, forward: float, backward: float, batch: int) -> None:
        if batch not in self._dense_cache:
            self._dense_cache[batch] = self.model.madds(batch, dense=True)
        self.madds.add(forward, backward, *self._dense_cache[batch])

    def predict(self, x: Tensor) -> Tensor:
        """Logits for evaluation (the caller sets eval mode and no_grad)."""
        return self.model(x)

    def start_epoch(self, epoch: int, n_epochs: int) -> None:
        for rule in self.rules:
            rule.start_epoch(epoch, n_epochs)
        self._madds_cache.clear()  # an annealed k changes here

    def end_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        for rule in self.rules:
            rule.end_epoch(epoch, metrics)
        self._madds_cache.clear()

    def epoch_notes(self) -> dict[str, Any]:
        """Scalars about the method's state to store with each epoch's results (e.g. the current k)."""
        notes: dict[str, Any] = {}
        for i, rule in enumerate(self.rules):
            for key, value in rule.notes().items():
                notes[f"layer{i + 1}_{key}"] = value
        return notes

    def state_dict(self) -> dict[str, Any]:
        return {
            "step_count": self.step_count,
            "madds": asdict(self.madds),
            "rules": [rule.state_dict() for rule in self.rules],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step_count"])
        self.madds = Madds(**state["madds"])
        for rule, rule_state in zip(self.rules, state["rules"]):
            rule.load_state_dict(rule_state)
        self._madds_cache.clear()


# Procedures of the rules that need their own, by rule class (`register_procedure`).
PROCEDURES: dict[type[BackwardRule], type[Procedure]] = {}


def register_procedure(rule: type[BackwardRule]) -> Callable[[type[Procedure]], type[Procedure]]:
    """Class decorator: models whose layers follow ``rule`` train with this procedure."""

    def add(cls: type[Procedure]) -> type[Procedure]:
        PROCEDURES[rule] = cls
        return cls

    return add


def make_procedure(model: Layered, optimizer: torch.optim.Optimizer, timers: Timers, seed: int) -> Procedure:
    """The procedure the model's rules ask for (the first layer's rule decides), else the standard one."""
    cls = PROCEDURES.get(type(model.layers[0].rule), Procedure)
    return cls(model, optimizer, timers, seed)
