"""Wall-clock accumulators shared by the training loop and the backward rules.

The training loop owns every `Stopwatch`; rules only receive one to time their
index selection (the thesis' "max-heap" time, section 9.3), so that selection and
matrix-product time can be reported apart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch


def device_sync(device: torch.device) -> Callable[[], None] | None:
    """A function that waits for queued kernels on `device`, or None on CPU.

    CUDA kernels run asynchronously, so a wall-clock interval is only meaningful
    when the queue is drained at both ends.
    """
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return None


class Stopwatch:
    """Accumulates the seconds spent inside ``with watch.measure():`` blocks.

    A plain class-based context manager (not ``@contextmanager``): it is entered
    once per layer per step inside the backward pass, where a generator-based
    one cost measurable microseconds.
    """

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.seconds = 0.0
        self._sync = sync
        self._start = 0.0

    def measure(self) -> "Stopwatch":
        return self

    def __enter__(self) -> None:
        if self._sync is not None:
            self._sync()
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        if self._sync is not None:
            self._sync()
        self.seconds += time.perf_counter() - self._start

    def add(self, seconds: float) -> None:
        """Count ``seconds`` measured elsewhere (the fused backward times its selection itself)."""
        self.seconds += seconds

    def reset(self) -> float:
        """Return the accumulated seconds and start again from zero."""
        seconds, self.seconds = self.seconds, 0.0
        return seconds


# The phases of training that runs report; "select" is the part of "backward"
# (or, for procedures with their own selection, of the step) spent choosing entries.
PHASES = ("forward", "backward", "select", "optimizer", "eval")


@dataclass
class Timers:
    """One `Stopwatch` per phase, seconds summed over the run (restored on resume)."""

    sync: Callable[[], None] | None = None
    watches: dict[str, Stopwatch] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.watches = {name: Stopwatch(self.sync) for name in PHASES}

    def __getitem__(self, name: str) -> Stopwatch:
        return self.watches[name]

    def totals(self) -> dict[str, float]:
        return {name: watch.seconds for name, watch in self.watches.items()}

    def restore(self, totals: dict[str, float]) -> None:
        for name, seconds in totals.items():
            if name in self.watches:
                self.watches[name].seconds = seconds
