"""Which jobs x threads gives the sweep the most epochs per hour on this machine?

    python scripts/bench_threads.py                       # l1-64 l3-256 l3-1024 l5-1024, dropout and topk
    python scripts/bench_threads.py --archs l3-1024 --settings 1x2 2x1 --rounds 3

For every (arch, method) each setting ``JxT`` launches ``J`` real runs of
``python -m asym_sweep`` at once, each with ``threads=T`` (1 epoch on
``--train-limit`` images, no checkpoint), and reads their ``timing.train_s`` from
``result.json``. Throughput is ``J / mean(train_s)`` epochs per second: what a sweep
of many runs gets when ``J`` of them share the machine. Settings are interleaved
round by round, so a drift in machine speed hits them alike; the table gives the
median over rounds and the throughput of each setting relative to the first.

Run it on a quiet machine (nothing else busy): it measures how runs share the
cores, so any other load is part of what it reports.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from asym_sweep import records

DEFAULT_ARCHS = ("l1-64", "l3-256", "l3-1024", "l5-1024")
DEFAULT_METHODS = ("dropout", "topk")


class RunFailed(Exception):
    """A measured run exited non-zero; the message names it and gives its last line of stderr."""


def parse_setting(text: str) -> tuple[int, int]:
    """``"2x1"`` -> (jobs 2, threads 1)."""
    jobs, sep, threads = text.partition("x")
    if not sep or not jobs.isdigit() or not threads.isdigit() or int(jobs) < 1 or int(threads) < 1:
        raise ValueError(f"bad setting {text!r}: expected <jobs>x<threads> with positive integers, e.g. 2x1")
    return int(jobs), int(threads)


def setting_names(settings: list[tuple[int, int]]) -> list[str]:
    return [f"{j}x{t}" for j, t in settings]


def run_command(arch: str, method: str, seed: int, threads: int, train_limit: int, root: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "asym_sweep",
        f"arch={arch}",
        f"method={method}",
        f"seed={seed}",
        f"threads={threads}",
        f"dataset.train_limit={train_limit}",
        "train.epochs=1",
        "train.checkpoint=false",
        "progress=off",
        f"runs_root={root}",
    ]


def measure_setting(arch: str, method: str, jobs: int, threads: int, train_limit: int, round_: int) -> list[float]:
    """``train_s`` of each of ``jobs`` runs launched at once (seeds differ, so folders differ)."""
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as tmp:
        root = Path(tmp)
        procs = [
            subprocess.Popen(
                run_command(arch, method, 100 * round_ + j, threads, train_limit, root),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for j in range(jobs)
        ]
        errors = [p.communicate()[1] for p in procs]
        for p, err in zip(procs, errors):
            if p.returncode != 0:
                raise RunFailed(
                    f"a run failed ({arch} {method}): {err.strip().splitlines()[-1] if err.strip() else p.returncode}"
                )
        return [records.read_result(folder)[0].timing.train_s for folder in records.run_folders(root)]


def measure_all(
    archs: list[str], methods: list[str], settings: list[tuple[int, int]], train_limit: int, rounds: int
) -> list[dict]:
    """Print and return, per arch and method, the median epochs per hour of every setting."""
    rows = []
    names = setting_names(settings)
    print(
        f"{'arch':8} {'method':8} "
        + " ".join(f"{n + ' ep/h':>10}" for n in names)
        + " "
        + " ".join(f"{n + '/' + names[0]:>10}" for n in names[1:])
    )
    for arch in archs:
        for method in methods:
            per_setting: dict[str, list[float]] = {n: [] for n in names}
            per_run: dict[str, list[float]] = {n: [] for n in names}
            for r in range(rounds):
                for name, (jobs, threads) in zip(names, settings):
                    seconds = measure_setting(arch, method, jobs, threads, train_limit, r)
                    per_run[name] += seconds
                    per_setting[name].append(jobs / statistics.mean(seconds) * 3600)
            medians = {n: statistics.median(v) for n, v in per_setting.items()}
            rows.append(
                {
                    "arch": arch,
                    "method": method,
                    "epochs_per_hour": medians,
                    "train_s": {n: statistics.median(v) for n, v in per_run.items()},
                }
            )
            print(
                f"{arch:8} {method:8} "
                + " ".join(f"{medians[n]:10.0f}" for n in names)
                + " "
                + " ".join(f"{medians[n] / medians[names[0]]:10.2f}" for n in names[1:]),
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS))
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    p.add_argument("--settings", nargs="+", default=["1x2", "2x1"], help="<jobs>x<threads>, the first is the reference")
    p.add_argument("--train-limit", type=int, default=20000, help="training images per epoch (default 20000)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default="outputs/bench", help="folder for the JSON result (a new file each run)")
    args = p.parse_args(argv)
    try:
        settings = [parse_setting(s) for s in args.settings]
        if args.rounds < 1 or args.train_limit < 1:
            raise ValueError("--rounds and --train-limit must be at least 1")
    except ValueError as err:
        print(f"bench_threads: error: {err}", file=sys.stderr)
        return 2
    try:
        rows = measure_all(args.archs, args.methods, settings, args.train_limit, args.rounds)
    except RunFailed as err:
        print(f"bench_threads: error: {err}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"threads-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(
        json.dumps(
            {
                "train_limit": args.train_limit,
                "rounds": args.rounds,
                "cores": os.cpu_count(),
                "settings": setting_names(settings),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
