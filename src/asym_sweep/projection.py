"""How long a launch will take, said before it starts.

    python -m asym_sweep --multirun +experiment=thesis_fashion projection=only   # print it, train nothing
    make projection                                                            # the same for the thesis grid

Every job of the sweep is composed as the launcher will run it, and timed by the best
evidence at hand:

* ``done``: its run folder holds a completed run (the launch will skip it): 0 s;
* ``records``: completed runs of the same settings on the same architecture (other seeds)
  exist under the runs root: the median of their wall seconds, less the epochs an interrupted
  run already holds. These were timed inside a sweep, beside its other jobs;
* ``measured``: otherwise a few training steps of its model on random data, with the threads
  its job will get, then ``epochs x (steps x step seconds + evaluation)``. Measured alone, so
  a job that will share the machine with others can take longer (up to 1.5x on l3-1024 beside a
  second job, ``docs/performance.md``).

The wall time of the launch is the jobs' seconds divided by the jobs it runs at once.

Each estimate also says how much of it is the forward pass, the optimizer step and
evaluation (its *floor*). Asymmetric training sparsifies only the backward pass (thesis
ch. 7: the forward uses every parameter, Adam updates every parameter, evaluation is a
forward pass), so every method does these in full and no backward rule can make the
launch shorter than the floor on this machine.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F
from hydra import compose
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from asym_sweep import records
from asym_sweep.data import TEST_IMAGES, TRAIN_IMAGES, n_batches
from asym_sweep.methods import MethodConfig
from asym_sweep.model import parse_arch
from asym_sweep.train import build_learner

MEASURED_STEPS, WARMUP_STEPS = 20, 5
START_S = 4.0  # Python start, data loading and model building of one run (docs/performance.md)


@dataclass
class Estimate:
    seconds: float
    source: str  # done, records, measured
    floor: float = 0.0  # of `seconds`: forward, optimizer and evaluation (the module's docstring)


@dataclass
class Projection:
    jobs: int  # run at once
    per_tag: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    sources: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    floor_seconds: float = 0.0

    def add(self, tag: str, estimate: Estimate) -> None:
        self.per_tag[tag].append(estimate.seconds)
        self.sources[estimate.source] += 1
        self.floor_seconds += estimate.floor

    @property
    def job_seconds(self) -> float:
        return sum(sum(v) for v in self.per_tag.values())

    @property
    def wall_hours(self) -> float:
        return self.job_seconds / max(1, self.jobs) / 3600

    @property
    def floor_hours(self) -> float:
        return self.floor_seconds / max(1, self.jobs) / 3600


def job_overrides(sweeper_params: dict[str, str], task_overrides: Iterable[str]) -> list[list[str]]:
    """The override list of every job, in the order the basic sweeper launches them."""
    params = [f"{k}={v}" for k, v in sweeper_params.items()] + list(task_overrides)
    parsed = OverridesParser.create().parse_overrides(params)
    return BasicSweeper.split_arguments(parsed, None)[0]


def completed_wall(runs_root: Path) -> dict[tuple[str, str, str], list[tuple[float, float]]]:
    """``(wall seconds, floor seconds)`` of every completed run, by (dataset, arch, run tag)."""
    walls: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    for folder in records.run_folders(runs_root):
        result, _ = records.read_result(folder)
        if result is not None and result.completed:
            dataset, arch, tag, _ = records.folder_key(folder)
            timing = result.timing
            floor = timing.forward_s + timing.optimizer_s + timing.eval_s
            walls[(dataset, arch, tag)].append((timing.wall_s, floor))
    return walls


def measure(cfg: DictConfig, threads: int) -> tuple[float, float]:
    """Seconds of one run of ``cfg`` from a few timed training steps and one evaluation pass,
    and of those the floor: the steps' forward and optimizer phases and the evaluation."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        arch, batch = parse_arch(cfg.arch), int(cfg.train.batch_size)
        _, _, _, procedure = build_learner(cfg, MethodConfig.from_config(cfg.method), arch, torch.device("cpu"), True)
        gen = torch.Generator().manual_seed(0)
        x, y = torch.rand(batch, 784, generator=gen), torch.randint(0, 10, (batch,), generator=gen)
        for _ in range(WARMUP_STEPS):
            procedure.step(x, y)
        before = procedure.timers.totals()
        start = time.perf_counter()
        for _ in range(MEASURED_STEPS):
            procedure.step(x, y)
        step_s = (time.perf_counter() - start) / MEASURED_STEPS
        after = procedure.timers.totals()
        step_floor_s = sum(after[k] - before[k] for k in ("forward", "optimizer")) / MEASURED_STEPS
        n_eval = int(cfg.dataset.val_size) + TEST_IMAGES
        start = time.perf_counter()
        with torch.no_grad():
            procedure.model.eval()
            for chunk in range(0, n_eval, int(cfg.train.eval_batch_size)):
                F.cross_entropy(
                    procedure.predict(torch.rand(min(int(cfg.train.eval_batch_size), n_eval - chunk), 784)),
                    torch.zeros(min(int(cfg.train.eval_batch_size), n_eval - chunk), dtype=torch.long),
                )
        eval_s = time.perf_counter() - start
    finally:
        torch.set_num_threads(old)
    n_train = TRAIN_IMAGES - int(cfg.dataset.val_size)
    if cfg.dataset.train_limit is not None:
        n_train = min(n_train, int(cfg.dataset.train_limit))
    steps = n_batches(n_train, batch)
    return START_S + int(cfg.train.epochs) * (steps * step_s + eval_s), int(cfg.train.epochs) * (
        steps * step_floor_s + eval_s
    )


def estimate(cfg: DictConfig, walls: dict, measured: dict, threads: int) -> Estimate:
    folder = records.run_dir(cfg)
    state, result, _ = records.classify(folder)
    if state == "completed":
        return Estimate(0.0, "done")
    key = (str(cfg.dataset.name), str(cfg.arch), records.run_tag(cfg))
    done_fraction = 0.0
    if state == "interrupted":
        checkpoint, _ = records.load_checkpoint(folder)
        done_fraction = (checkpoint["epoch"] / int(cfg.train.epochs)) if checkpoint else 0.0
    left = 1 - done_fraction
    if walls.get(key):
        wall, floor = (statistics.median(column) for column in zip(*walls[key]))
        return Estimate(wall * left, "records", floor * left)
    if key not in measured:
        measured[key] = measure(cfg, threads)
    seconds, floor = measured[key]
    return Estimate(seconds * left, "measured", floor * left)


def project(jobs_overrides: list[list[str]], runs_root: Path, jobs: int, threads: int) -> Projection:
    """Compose every job (inside a running Hydra app or an ``initialize`` context) and time it."""
    walls, measured = completed_wall(runs_root), {}
    projection = Projection(jobs)
    for overrides in jobs_overrides:
        cfg = compose(config_name="config", overrides=overrides)
        job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        projection.add(records.run_tag(job), estimate(job, walls, measured, threads))
    return projection


def render(p: Projection) -> str:
    hours = p.wall_hours
    lines = [
        f"projection: {sum(len(v) for v in p.per_tag.values())} runs, {p.jobs} at a time: "
        f"{hours:.1f} h ({p.job_seconds / 3600:.1f} h of job time); "
        + ", ".join(f"{n} {s}" for s, n in sorted(p.sources.items()))
    ]
    if p.floor_seconds > 0:
        lines.append(
            f"  of which {p.floor_hours:.1f} h forward passes, optimizer steps and evaluation, which every method does "
            "in full (only the backward pass is sparsified): no backward rule makes it shorter here"
        )
    width = max(map(len, p.per_tag), default=0)  # the column fits the longest run tag
    for tag, seconds in sorted(p.per_tag.items(), key=lambda kv: -sum(kv[1])):
        lines.append(f"  {tag:{width}} {len(seconds):4} runs  {sum(seconds) / 3600 / max(1, p.jobs):6.2f} h")
    if p.sources.get("measured") and p.jobs > 1:
        lines.append("  (measured runs were timed alone; beside the launch's other jobs a run can take up to 1.5x)")
    return "\n".join(lines)
