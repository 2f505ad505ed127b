"""The feed-forward ReLU network of the thesis, built from sparsified linear layers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asym_sweep.dropout import dropout as apply_dropout
from asym_sweep.engine.autograd import GradSink, apply_rule
from asym_sweep.engine.gradients import dense_backward_madds, dense_forward_madds
from asym_sweep.engine.rule import BackwardRule
from asym_sweep.timing import Stopwatch

N_INPUTS = 28 * 28
N_CLASSES = 10
DROPOUT_AT = ("all", "last")
_ARCH_PATTERN = re.compile(r"l([0-9]+)-([0-9]+)")


@dataclass(frozen=True)
class Arch:
    """``l<depth>-<width>``: ``depth`` hidden layers of ``width`` ReLU units (thesis 9.1.2)."""

    depth: int
    width: int

    @property
    def name(self) -> str:
        return f"l{self.depth}-{self.width}"

    def layer_shapes(self, n_in: int = N_INPUTS, n_out: int = N_CLASSES) -> list[tuple[int, int]]:
        """``(in, out)`` of every linear layer, input to output."""
        sizes = [n_in] + [self.width] * self.depth + [n_out]
        return list(zip(sizes[:-1], sizes[1:]))


def parse_arch(name: str) -> Arch:
    match = _ARCH_PATTERN.fullmatch(str(name).strip())
    if match is None or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise ValueError(f"bad architecture {name!r}: expected l<depth>-<width> with positive integers, e.g. l3-256")
    return Arch(int(match.group(1)), int(match.group(2)))


class SparseLinear(nn.Module):
    """A linear layer whose backward pass follows a `BackwardRule`."""

    def __init__(
        self, in_features: int, out_features: int, rule: BackwardRule, nonnegative_input: bool = False
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.rule = rule
        # Set only where the input is non-negative by construction (gradients.Needs): lets the
        # rules that rank the input (partial, complete, SWAT/SAW) skip its absolute value.
        self.nonnegative_input = nonnegative_input
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        # Set by the training loop to time index selection; not part of the state.
        self.clock: Stopwatch | None = None
        # Row-sparse gradients go into reused .grad buffers whenever the backward accumulates
        # into this layer's .grad (autograd.GradSink); `MLP.use_grad_sinks(False)` turns it off.
        self.sink: GradSink | None = GradSink()
        self.native = rule.autograd_native or rule.keeps_everything(in_features, out_features)
        # The fused backward where the rule has one (`fused`; same gradients); `MLP.use_fused(False)`
        # keeps the pure-torch path.
        self.fused = True
        # Initialised at once, as nn.Linear is: a model built from the public API must not train
        # from torch.empty's leftovers (denormal garbage slowed Adam: docs/performance.md).
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        # Xavier/Glorot uniform weights and zero biases (thesis 9.1.2).
        nn.init.xavier_uniform_(self.weight, generator=generator)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.native:
            return F.linear(x, self.weight, self.bias)
        return apply_rule(
            self.rule, x, self.weight, self.bias, self.clock, self.sink, self.nonnegative_input, self.fused
        )

    def extra_repr(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.rule.params().items())
        sign = ", input >= 0" if self.nonnegative_input else ""
        return (
            f"{self.in_features} -> {self.out_features}, rule={self.rule.name}({params}), scope={self.rule.scope}{sign}"
        )


class MLP(nn.Module):
    """784 inputs, ``depth`` ReLU hidden layers, 10 logits.

    Dropout (symmetric baseline, p=0.4 in the thesis) acts on hidden activations
    after the ReLU, never on the input pixels or the logits: after every hidden layer
    (``dropout_at="all"``) or only after the last one (``"last"``, `DROPOUT_AT`).

    Every layer after the first reads a ReLU output (scaled by dropout's 1/(1-p) at most),
    so it is told its input is non-negative (`gradients.Needs`); the first layer is told so
    only with ``nonnegative_pixels`` (the training data: pixels in [0, 1], ``data.py``).
    """

    def __init__(
        self,
        arch: Arch,
        rules: Sequence[BackwardRule],
        dropout: float = 0.0,
        nonnegative_pixels: bool = False,
        dropout_at: str = "all",
    ) -> None:
        super().__init__()
        shapes = arch.layer_shapes()
        if len(rules) != len(shapes):
            raise ValueError(f"{arch.name} has {len(shapes)} layers but {len(rules)} rules were given")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if dropout_at not in DROPOUT_AT:
            raise ValueError(f"dropout_at must be one of {', '.join(DROPOUT_AT)}, got {dropout_at!r}")
        self.arch = arch
        self.dropout = dropout
        # Per hidden layer: whether dropout follows its ReLU.
        self.dropped = [dropout > 0.0 and (dropout_at == "all" or n == arch.depth - 1) for n in range(arch.depth)]
        self.layers = nn.ModuleList(
            SparseLinear(i, o, r, nonnegative_input=n > 0 or nonnegative_pixels)
            for n, ((i, o), r) in enumerate(zip(shapes, rules))
        )

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        for layer in self.layers:
            layer.reset_parameters(generator)

    def set_clock(self, clock: Stopwatch | None) -> None:
        for layer in self.layers:
            layer.clock = clock

    def use_grad_sinks(self, enabled: bool = True) -> None:
        """Write row-sparse weight gradients into reused buffers (see `GradSink`; on by default).

        With ``loss.backward()`` a layer's ``.grad`` tensor is then reused by the next step (clone
        it to keep it); ``torch.autograd.grad`` is not affected either way.
        """
        for layer in self.layers:
            layer.sink = GradSink() if enabled else None

    def use_fused(self, enabled: bool = True) -> None:
        """Take the fused backward where a layer's rule has one (on by default; `fused`), or not:
        the same gradients either way, the pure-torch path being the reference."""
        for layer in self.layers:
            layer.fused = enabled

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], -1)
        *hidden, last = self.layers
        for layer, dropped in zip(hidden, self.dropped):
            x = F.relu(layer(x))
            if dropped:
                x = apply_dropout(x, self.dropout, self.training)  # F.dropout's values, mask drawn faster
        return last(x)

    def madds(self, batch: int, dense: bool = False) -> tuple[float, float]:
        """(forward, backward) multiply-adds of one step: what the layers' rules compute, or with
        ``dense`` ordinary backprop's on the same shapes. No input gradient for the first layer."""
        forward: float = 0
        backward: float = 0
        for i, layer in enumerate(self.layers):
            shape = (batch, layer.in_features, layer.out_features)
            if dense:
                forward += dense_forward_madds(*shape)
                backward += dense_backward_madds(*shape, input_grad=i > 0)
            else:
                forward += layer.rule.forward_madds(*shape)
                backward += layer.rule.backward_madds(*shape, input_grad=i > 0)
        return forward, backward


def build_mlp(
    arch: Arch,
    rules: Sequence[BackwardRule],
    dropout: float = 0.0,
    seed: int | None = None,
    nonnegative_pixels: bool = False,
    dropout_at: str = "all",
) -> MLP:
    """An initialised MLP; ``seed`` makes the initial weights reproducible.

    ``nonnegative_pixels``: the inputs it will be fed have no negative entry (see `MLP`).
    """
    # The layers' own default initialisation draws from the global generator; the run's
    # dropout stream, seeded before the model is built, must not see those draws.
    with torch.random.fork_rng(devices=[]):
        model = MLP(arch, rules, dropout, nonnegative_pixels, dropout_at)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    model.reset_parameters(generator)
    return model
