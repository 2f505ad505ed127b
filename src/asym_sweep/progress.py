"""A one-line progress bar on stderr that stays silent when stderr is not a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def progress_enabled(mode: str, stream: TextIO | None = None) -> bool:
    """``on``, ``off``, or ``auto`` (only when the stream is a terminal)."""
    if mode in ("on", "off"):
        return mode == "on"
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class ProgressBar:
    """``label  [#####.....]  done/total  note``, redrawn in place at most 10 times a second."""

    def __init__(self, label: str, total: int, enabled: bool, stream: TextIO | None = None, width: int = 24) -> None:
        self.label = label
        self.total = max(total, 1)
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.width = width
        self.done = 0
        self.note = ""
        self._last_draw = 0.0

    def update(self, n: int = 1, note: str | None = None) -> None:
        self.done += n
        if note is not None:
            self.note = note
        now = time.monotonic()
        if self.enabled and (now - self._last_draw > 0.1 or self.done >= self.total):
            self._last_draw = now
            self._draw()

    def reset(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, max(total, 1), 0

    def _draw(self) -> None:
        filled = int(self.width * min(self.done, self.total) / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {self.note}\033[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()
