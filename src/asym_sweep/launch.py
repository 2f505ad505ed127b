"""Hydra's side of a launch: the schemas and resolvers it composes with, how many jobs run at
once and with how many threads, and the bookkeeping (every job of one launch appends its
outcome to a ledger; a Hydra callback prints the launch's summary and sets the exit code).

The ledger's path travels to the jobs in the environment variable
``ASYM_SWEEP_LAUNCH``, which every launcher passes on (the basic one runs jobs
in-process, joblib workers and submitit jobs inherit the environment). Each job
appends one short JSON line with ``O_APPEND``, so parallel jobs do not clash.

Exit codes: 0 every run completed or was skipped (done already, or in progress in
another launch); 1 a run failed while training; 2 bad input, found before training (a
rejected config or override, missing data); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from asym_sweep import grid, projection, records, resources
from asym_sweep.config import RunConfig

LAUNCH_ENV = "ASYM_SWEEP_LAUNCH"
LEDGER_DIR = ".launches"
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
# What one job can end in, in the order the summary lists them.
OUTCOMES = ("completed", "skipped", "in progress", "interrupted", "failed", "invalid")


class LaunchExit(SystemExit):
    """The launch's own exit code (told apart from Hydra's exit 1 on a composition error)."""


def register_configs() -> None:
    """Make the schema and the resolvers known to Hydra; safe to call more than once."""
    ConfigStore.instance().store(name="run_schema", node=RunConfig)
    if not OmegaConf.has_resolver("run_subdir"):
        # Hydra's run folder is records' layout (conf/config.yaml: hydra.run.dir, hydra.sweep.subdir).
        OmegaConf.register_new_resolver("run_subdir", lambda *, _root_: records.run_subdir(_root_))
    if not OmegaConf.has_resolver("grid"):
        # The presets sweep grid.py's lists (conf/experiment): ${grid:archs,fashion_mnist}, ${grid:methods}.
        OmegaConf.register_new_resolver("grid", grid_values)


def grid_values(what: str, dataset: str = "") -> str | int:
    """A list of `grid` as a sweep value: ``archs`` of a dataset, the thesis' ``methods``, the
    readings ``panel`` and its ``readings``, and the rules experiment's ``rule_methods``; or a seed
    count: the grid's ``seeds``, the panel's ``panel_seeds``."""
    counts = {"seeds": grid.GRID_SEEDS, "panel_seeds": grid.PANEL_SEEDS}
    if what in counts:
        return counts[what]
    values = {
        "methods": grid.METHODS,
        "panel": grid.PANEL,
        "readings": grid.readings(),
        "rule_methods": grid.rule_methods(),
    }
    if what == "archs":
        return ",".join(grid.ARCHS[dataset])
    if what not in values:
        raise ValueError(
            f"${{grid:{what}}}: expected archs,<dataset>, methods, panel, readings, rule_methods, seeds or panel_seeds"
        )
    return ",".join(values[what])


def jobs_of_launch(launcher: DictConfig | None = None) -> int:
    """How many jobs the launcher runs at once on this machine (1 for the basic launcher)."""
    launcher = launcher if launcher is not None else HydraConfig.get().launcher
    if "cpus_per_task" in launcher and launcher.cpus_per_task:
        return 1  # a cluster job has its cores to itself
    n_jobs = launcher.get("n_jobs") if "n_jobs" in launcher else 1
    if n_jobs is None or n_jobs < 1:  # joblib: -1 means one job per core
        return resources.available_cores()
    return int(n_jobs)


def threads_for_job(cfg: DictConfig, jobs: int, launcher: DictConfig | None = None) -> resources.ThreadChoice:
    """Torch threads so that parallel jobs x threads fits the cores other work leaves free."""
    launcher = launcher if launcher is not None else HydraConfig.get().launcher
    if cfg.threads == 0 and "cpus_per_task" in launcher and launcher.cpus_per_task:
        cores = int(launcher.cpus_per_task)
        return resources.ThreadChoice(cores, 1, cores, None, "hydra.launcher.cpus_per_task")
    busy = resources.other_busy_cores() if cfg.threads == 0 else None
    return resources.choose_threads(int(cfg.threads), jobs, resources.available_cores(), busy)


def ledger_path(runs_root: str | Path, launch_id: str) -> Path:
    return Path(runs_root) / LEDGER_DIR / f"{launch_id}.jsonl"


def record_outcome(run_dir: Path, status: str, message: str = "") -> None:
    """Append this job's outcome to the current launch's ledger (no-op outside a launch)."""
    ledger = os.environ.get(LAUNCH_ENV)
    if not ledger:
        return
    path = Path(ledger)
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
    parts += [f"{counts[s]} {s}" for s in ("in progress", "interrupted") if counts.get(s)]
    lost = (expected - len(outcomes)) if expected is not None else 0
    if lost > 0:
        parts.append(f"{lost} without an outcome (killed?)")
    code = 0
    if counts.get("failed") or lost > 0:
        code = EXIT_FAILED
    if counts.get("invalid"):
        code = EXIT_INVALID
    if counts.get("interrupted"):
        code = EXIT_INTERRUPTED
    return f"asym-sweep: {len(outcomes)} runs: " + ", ".join(parts), code


def report_lines(outcomes: list[dict[str, Any]], expected: int | None) -> tuple[list[str], int]:
    """The summary line, then one line per run that did not complete or skip (at most 20)."""
    line, code = summarize(outcomes, expected)
    notable = [o for o in outcomes if o["status"] in ("failed", "invalid", "in progress", "interrupted")]
    return [line] + [f"  {o['status']}: {o['run_dir']}: {o['message']}" for o in notable[:20]], code


def interrupted_summary() -> str:
    """After Ctrl-C: what the launch got done before it (its ledger so far)."""
    ledger = os.environ.get(LAUNCH_ENV)
    outcomes = read_outcomes(Path(ledger)) if ledger else []
    if ledger:
        Path(ledger).unlink(missing_ok=True)
    lines, _ = report_lines(outcomes, None)
    return "\n".join(
        ["asym-sweep: interrupted; run the same command again to resume (finished runs are skipped)"] + lines
    )


def print_projection(config: DictConfig) -> None:
    """The launch's projected time (`projection`), before any job starts."""
    params = (
        OmegaConf.to_container(config.hydra.sweeper.params, resolve=True) if config.hydra.sweeper.get("params") else {}
    )
    jobs = jobs_of_launch(config.hydra.launcher)
    threads = threads_for_job(config, jobs, config.hydra.launcher).threads
    overrides = projection.job_overrides(params or {}, config.hydra.overrides.task)
    print(
        f"projection: timing {len(overrides)} jobs (finished runs, else a few measured steps each) ...",
        file=sys.stderr,
        flush=True,
    )
    print(
        projection.render(projection.project(overrides, Path(config.runs_root), jobs, threads)),
        file=sys.stderr,
        flush=True,
    )


class LaunchSummary(Callback):
    """Hydra callback: opens a ledger at launch start, reports it at the end."""

    def __init__(self) -> None:
        self.ledger: Path | None = None
        self.jobs: int | None = None

    def _start(self, config: DictConfig) -> None:
        self.ledger = ledger_path(Path(config.runs_root).resolve(), uuid.uuid4().hex)
        os.environ[LAUNCH_ENV] = str(self.ledger)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._start(config)
        self.jobs = 1

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.get("projection", "off") != "off":
            print_projection(config)
            if config.projection == "only":
                raise LaunchExit(0)
        self._start(config)
        self.jobs = None  # the sweeper knows; every job records itself

    def _end(self) -> None:
        assert self.ledger is not None
        outcomes = read_outcomes(self.ledger)
        self.ledger.unlink(missing_ok=True)
        lines, code = report_lines(outcomes, self.jobs)
        if self.jobs != 1 or not outcomes:
            print("\n".join(lines), file=sys.stderr)
        os.environ.pop(LAUNCH_ENV, None)
        if code:
            # Hydra lets SystemExit through: this is how the launch's exit code is set.
            raise LaunchExit(code)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._end()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._end()
