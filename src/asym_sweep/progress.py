"""What a run shows while it trains.

On a terminal: one tqdm bar over the whole run (epoch i/N, batches, rate, ETA). Elsewhere
(``make run > log``, ``nohup``, SLURM): one line per epoch on stderr. Either way every epoch's
line also goes into the run's own log (``run.log`` in its folder, through the logger
``asym_sweep.logfile`` that ``conf/hydra/job_logging/asym_sweep.yaml`` points at the file).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from tqdm import tqdm

RUN_LOGGER = "asym_sweep"  # stderr and the run's log
FILE_LOGGER = "asym_sweep.logfile"  # the run's log only


def progress_enabled(mode: str, stream: TextIO | None = None) -> bool:
    """``on``, ``off``, or ``auto`` (only when the stream is a terminal)."""
    if mode in ("on", "off"):
        return mode == "on"
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class RunProgress:
    """The bar (terminal) or the per-epoch lines (elsewhere) of one run."""

    def __init__(
        self, label: str, epochs: int, batches: int, done_epochs: int, enabled: bool, stream: TextIO | None = None
    ) -> None:
        self.label = label
        self.epochs = epochs
        self.enabled = enabled
        self._epoch_seconds: list[float] = []
        self.bar = tqdm(
            total=epochs * batches,
            initial=done_epochs * batches,
            desc=label,
            unit="batch",
            file=stream or sys.stderr,
            disable=not enabled,
            dynamic_ncols=True,
            leave=False,
        )

    def start_epoch(self, epoch: int) -> None:
        self.bar.set_description(f"{self.label} epoch {epoch + 1}/{self.epochs}", refresh=False)

    def step(self) -> None:
        self.bar.update(1)

    def end_epoch(self, epoch: int, train_loss: float, val_acc: float, test_acc: float, seconds: float) -> str:
        """Log the epoch's line; ``seconds``: the epoch's wall time, training and evaluation."""
        self._epoch_seconds.append(seconds)
        remaining = self.epochs - (epoch + 1)
        eta = remaining * sum(self._epoch_seconds) / len(self._epoch_seconds)
        line = (
            f"{self.label} epoch {epoch + 1}/{self.epochs}: loss {train_loss:.4f}, val acc {val_acc:.4f}, "
            f"test acc {test_acc:.4f}, {seconds:.1f} s, ETA {format_duration(eta)}"
        )
        logging.getLogger(FILE_LOGGER if self.enabled else RUN_LOGGER).info(line)
        self.bar.set_postfix_str(f"loss {train_loss:.4f} val {val_acc:.4f}", refresh=False)
        return line

    def close(self) -> None:
        self.bar.close()
