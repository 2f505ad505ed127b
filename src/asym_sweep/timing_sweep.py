"""The timing sweep: every grid method's training step on every architecture, timed in one
stretch on one machine (``make timing``; ``python -m asym_sweep.timing_sweep``).

The thesis' time claims compare backward times within an architecture (Tables 9.2-9.52). The
grid's 20-epoch runs time each run alone, at whatever hour and on whatever host it ran, beside
the sweep's other job; a ratio of two such totals also measures the machine. This sweep asks
the question directly: per architecture it builds the four methods' learners exactly as their
runs do (`train.build_learner`, the configs composed from ``conf/``), warms them up on real
training batches, then times ``steps`` steps of each, the methods taking turns (round-robin,
the order rotated each round) for ``rounds`` rounds. A round's number is the median over its
steps; a method's ratio to dropout is taken round by round (the two were timed minutes apart)
and reported as the median over rounds with its min-max.

Nothing else should run meanwhile (two busy processes on two cores slow a run 5-10x): the
sweep measures how many cores other processes kept busy and records it, and warns before it
starts when they are busy. The record (`TimingRecord`) goes to ``<out>/<host>-<time>.json``;
the published one is in ``results/timing/`` and the report reads it (`read_records`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import DictConfig, OmegaConf

from asym_sweep import native, paths, provenance, resources
from asym_sweep.allocator import keep_freed_memory
from asym_sweep.config import CONF_DIR
from asym_sweep.data import DataError, Splits, load_splits, shuffled_batches
from asym_sweep.dropout import helper_masks_agree
from asym_sweep.engine.procedure import Procedure
from asym_sweep.grid import FASHION_ARCHS, METHODS
from asym_sweep.launch import register_configs
from asym_sweep.methods import MethodConfig
from asym_sweep.model import parse_arch
from asym_sweep.records import run_tag, write_json_atomic
from asym_sweep.selection import native_ties_agree
from asym_sweep.timing_records import Row, TimingRecord, ratio_table, render
from asym_sweep.train import build_learner

TIMED = ("forward", "backward", "select", "optimizer")  # the procedure's phases, ms per step
BUSY_WARNING = 0.25  # cores kept busy by other processes above which the sweep warns


@dataclass(frozen=True)
class Plan:
    """What the sweep measures (its defaults take about 5 minutes on a 2-core machine)."""

    archs: tuple[str, ...] = FASHION_ARCHS
    methods: tuple[str, ...] = METHODS
    warmup: int = 20  # steps per method before an architecture's rounds
    steps: int = 150  # timed steps per method and round
    rounds: int = 5
    threads: int = 1  # as each job of a thesis sweep runs (conf/experiment/thesis_fashion.yaml)
    seed: int = 0

    def check(self) -> None:
        for name in ("warmup", "steps", "rounds", "threads"):
            if getattr(self, name) < (0 if name == "warmup" else 1):
                raise ValueError(f"--{name} must be at least {0 if name == 'warmup' else 1}, got {getattr(self, name)}")
        for arch in self.archs:
            parse_arch(arch)
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ValueError(f"unknown method {', '.join(unknown)}; the grid's methods are {', '.join(METHODS)}")
        if "dropout" not in self.methods:
            raise ValueError("the methods must include dropout, the baseline every ratio is taken to")


def machine_description(threads: int) -> dict[str, Any]:
    """Host, CPU and software the sweep ran on (what a reader needs to know which machine answered)."""
    return {
        "host": platform.node(),
        "cpu": resources.cpu_description(),
        "cpu_model": resources.cpu_model(),
        "cores": resources.available_cores(),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "compiled_helper": native.helper() is not None,
        "compiled_dropout_mask": helper_masks_agree(),
        "compiled_fused_backward": _fused_built(),
        "loadavg_start": resources.load_average(),
        **provenance.source_revision(),
    }


def _fused_built() -> bool | None:
    """Whether the engine takes the fused backward and it was built (None: an engine without one, as a
    run of this script against older code for a "before" table has)."""
    from asym_sweep.engine import autograd

    if not hasattr(autograd, "_fused_backward"):
        return None
    from asym_sweep.engine import fused

    return fused.module() is not None


def compose_job(method: str, arch: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The run config of ``method=<method> arch=<arch>`` as a grid run composes it (Hydra's own
    composition of ``conf/``, so dropout's standardised inputs come with it), with ``overrides``
    (e.g. ``dataset.root=...``) on top."""
    overrides = [f"method={method}", f"arch={arch}", *overrides]
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])


def batches(splits: Splits, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Real training batches in a seeded order, endlessly (every method sees the same images)."""
    while True:
        yield from shuffled_batches(splits.train_x, splits.train_y, batch_size, torch.Generator().manual_seed(seed))
        seed += 1


@dataclass
class Learner:
    method: str
    tag: str
    procedure: Procedure
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]]
    flop_ratio: float


def build_learners(
    arch: str, plan: Plan, data: Callable[[DictConfig], Splits], overrides: Sequence[str]
) -> list[Learner]:
    out = []
    for method in plan.methods:
        cfg = compose_job(method, arch, overrides)
        splits = data(cfg)
        _, _, _, procedure = build_learner(
            cfg,
            MethodConfig.from_config(cfg.method),
            parse_arch(arch),
            torch.device("cpu"),
            bool(splits.train_x.min() >= 0),
        )
        sparse, dense = (
            procedure.model.madds(int(cfg.train.batch_size))[1],
            procedure.model.madds(int(cfg.train.batch_size), dense=True)[1],
        )
        out.append(
            Learner(
                method, run_tag(cfg), procedure, batches(splits, int(cfg.train.batch_size), plan.seed), sparse / dense
            )
        )
    return out


def timed_steps(learner: Learner, n: int) -> dict[str, list[float]]:
    """``n`` training steps; per phase (and the whole step) the milliseconds of each."""
    timers = learner.procedure.timers
    out: dict[str, list[float]] = {name: [] for name in (*TIMED, "step")}
    for _ in range(n):
        xb, yb = next(learner.batches)
        before = timers.totals()
        start = time.perf_counter()
        learner.procedure.step(xb, yb)
        out["step"].append((time.perf_counter() - start) * 1e3)
        after = timers.totals()
        for name in TIMED:
            out[name].append((after[name] - before[name]) * 1e3)
    return out


def measure_arch(arch: str, learners: list[Learner], plan: Plan) -> list[Row]:
    """Warm-up, then the rounds, the methods taking turns in an order rotated every round."""
    for learner in learners:
        timed_steps(learner, plan.warmup)
    rows = []
    for r in range(plan.rounds):
        order = learners[r % len(learners) :] + learners[: r % len(learners)]
        for position, learner in enumerate(order):
            ms = {name: statistics.median(v) for name, v in timed_steps(learner, plan.steps).items()}
            rows.append(
                Row(
                    arch,
                    learner.method,
                    learner.tag,
                    r,
                    position,
                    ms["forward"],
                    ms["backward"],
                    ms["select"],
                    ms["optimizer"],
                    ms["step"],
                    learner.flop_ratio,
                )
            )
    return rows


def project(plan: Plan, learners_of: Callable[[str], list[Learner]], probe_steps: int = 3) -> float:
    """Seconds the sweep will take: a few steps of every learner, scaled to the plan."""
    seconds = 0.0
    for arch in plan.archs:
        start = time.perf_counter()
        learners = learners_of(arch)
        build_s = time.perf_counter() - start
        per_step = 0.0
        for learner in learners:
            timed_steps(learner, 1)  # first step: allocations, not representative
            per_step += statistics.median(timed_steps(learner, probe_steps)["step"]) / 1e3
        seconds += build_s + per_step * (plan.warmup + plan.steps * plan.rounds) * 1.1  # + the timers' own cost
    return seconds


def run(plan: Plan, out: Path, overrides: Sequence[str], log: Callable[[str], None]) -> Path:
    """Measure the plan and write its record; returns the record's path."""
    plan.check()
    torch.set_num_threads(plan.threads)
    keep_freed_memory()
    native.helper()
    native_ties_agree()  # one-time checks and builds, before anything is timed
    machine = machine_description(plan.threads)
    cache: dict[str, Splits] = {}

    def data(cfg: DictConfig) -> Splits:
        key = str(cfg.dataset.scaling)
        if key not in cache:
            cache[key] = load_splits(
                cfg.dataset.name, cfg.dataset.root, cfg.dataset.val_size, cfg.dataset.train_limit, key
            )
        return cache[key]

    busy = resources.other_busy_cores()
    if busy is not None and busy > BUSY_WARNING:
        log(
            f"warning: other processes keep {busy:.1f} cores busy; these timings will be slowed by them "
            "(stop or pause them: kill -STOP <pid>, and kill -CONT <pid> after)"
        )
    seconds = project(plan, lambda a: build_learners(a, plan, data, overrides))
    log(
        f"timing sweep: {len(plan.archs)} archs x {len(plan.methods)} methods x {plan.rounds} rounds x {plan.steps} "
        "steps, "
        f"{plan.threads} thread(s): projected {seconds / 60:.1f} min"
    )
    record = TimingRecord(
        {**asdict(plan), "overrides": list(overrides)},
        machine,
        dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    meter, start = resources.LoadMeter(), time.perf_counter()
    for i, arch in enumerate(plan.archs):
        rows = measure_arch(arch, build_learners(arch, plan, data, overrides), plan)
        record.rows += [asdict(r) for r in rows]
        done = time.perf_counter() - start
        line = ", ".join(
            f"{t['method']} {t['ratio']:.2f}"
            for t in ratio_table(record.rows[-len(rows) :])
            if t["method"] != "dropout"
        )
        log(
            f"[{i + 1}/{len(plan.archs)}] {arch}: backward / dropout's {line} ({done / 60:.1f} min, "
            f"about {done / (i + 1) * (len(plan.archs) - i - 1) / 60:.1f} min left)"
        )
    record.wall_s = time.perf_counter() - start
    record.other_busy_cores = meter.read()
    record.machine["loadavg_end"] = resources.load_average()
    record.finished_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    stamp = record.started_at.replace(":", "").replace("-", "")[:15]
    path = out / f"{record.machine['host'] or 'host'}-{stamp}.json"
    out.mkdir(parents=True, exist_ok=True)
    if path.exists():  # never overwrite a record
        path = path.with_name(f"{path.stem}-{time.time_ns()}.json")
    write_json_atomic(path, record.to_json())
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m asym_sweep.timing_sweep", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--out",
        default=paths.TIMING,
        help=f"folder of the record (default {paths.TIMING}; the published ones: {paths.PUBLISHED_TIMING})",
    )
    p.add_argument("--archs", nargs="+", default=list(Plan.archs), help="architectures (default: the 25 of the grid)")
    p.add_argument("--methods", nargs="+", default=list(Plan.methods), help="grid methods (default: all four)")
    for name in ("warmup", "steps", "rounds", "threads", "seed"):
        p.add_argument(f"--{name}", type=int, default=getattr(Plan, name))
    p.add_argument(
        "overrides", nargs="*", help="config overrides for every job, e.g. dataset.root=/data (Hydra syntax)"
    )
    args = p.parse_args(argv)
    plan = Plan(tuple(args.archs), tuple(args.methods), args.warmup, args.steps, args.rounds, args.threads, args.seed)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        plan.check()
        path = run(plan, Path(args.out), args.overrides, log)
    except (ValueError, DataError, HydraException, ConfigCompositionException) as err:
        print(f"timing_sweep: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("timing_sweep: interrupted; nothing written", file=sys.stderr)
        return 130
    record = TimingRecord.from_json(json.loads(path.read_text()))
    print(render(ratio_table(record.rows)))
    print(
        f"{record.machine['host']} ({record.machine['cpu']}), {plan.threads} thread(s), {record.wall_s / 60:.1f} min, "
        f"other processes {record.other_busy_cores or 0:.2f} cores busy; record: {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
