"""Launch bookkeeping: every job of one launch appends its outcome to a ledger,
and a Hydra callback prints the launch's summary and sets the exit code.

The launch id travels to the jobs in the environment variable
``ASYM_SWEEP_LAUNCH``, which every launcher passes on (the basic one runs jobs
in-process, joblib workers and submitit jobs inherit the environment). Each job
appends one short JSON line with ``O_APPEND``, so parallel jobs do not clash.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

LAUNCH_ENV = "ASYM_SWEEP_LAUNCH"
LEDGER_DIR = ".launches"
# Exit codes: a run failed while training; a run was rejected before training.
EXIT_FAILED = 1
EXIT_INVALID = 2


def ledger_path(runs_root: str | Path, launch_id: str) -> Path:
    return Path(runs_root) / LEDGER_DIR / f"{launch_id}.jsonl"


def record_outcome(runs_root: str | Path, run_dir: Path, status: str, message: str = "") -> None:
    """Append this job's outcome to the current launch's ledger (no-op outside a launch)."""
    launch_id = os.environ.get(LAUNCH_ENV)
    if not launch_id:
        return
    path = ledger_path(runs_root, launch_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"run_dir": str(run_dir), "status": status, "message": message}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_outcomes(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    outcomes = []
    for line in path.read_text().splitlines():
        try:
            outcomes.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return outcomes


def summarize(outcomes: list[dict[str, Any]], expected: int | None) -> tuple[str, int]:
    """The summary line and the exit code for a launch's outcomes."""
    counts = Counter(o["status"] for o in outcomes)
    parts = [f"{counts.get(s, 0)} {s}" for s in ("completed", "skipped", "failed", "invalid")]
    lost = (expected - len(outcomes)) if expected is not None else 0
    if lost > 0:
        parts.append(f"{lost} without an outcome (killed?)")
    code = 0
    if counts.get("failed") or lost > 0:
        code = EXIT_FAILED
    if counts.get("invalid"):
        code = EXIT_INVALID
    return f"asym-sweep: {len(outcomes)} runs: " + ", ".join(parts), code


class LaunchSummary(Callback):
    """Hydra callback: opens a ledger at launch start, reports it at the end."""

    def __init__(self) -> None:
        self.launch_id = ""
        self.jobs: int | None = None

    def _start(self) -> None:
        self.launch_id = uuid.uuid4().hex
        os.environ[LAUNCH_ENV] = self.launch_id

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._start()
        self.jobs = 1

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._start()
        self.jobs = None  # the sweeper knows; every job records itself

    def _end(self, config: DictConfig) -> None:
        path = ledger_path(config.runs_root, self.launch_id)
        outcomes = read_outcomes(path)
        path.unlink(missing_ok=True)
        line, code = summarize(outcomes, self.jobs)
        failed = [o for o in outcomes if o["status"] in ("failed", "invalid")]
        if self.jobs != 1 or not outcomes:
            print(line, file=sys.stderr)
            for o in failed[:20]:
                print(f"  {o['status']}: {o['run_dir']}: {o['message']}", file=sys.stderr)
        os.environ.pop(LAUNCH_ENV, None)
        if code:
            # Hydra lets SystemExit through: this is how the launch's exit code is set.
            raise SystemExit(code)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._end(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._end(config)
