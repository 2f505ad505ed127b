"""A run beside other work: the same default run alone and beside a busy loop, ratio printed.

    python scripts/bench_under_load.py                      # l3-256, 1 epoch on 20,000 images, 3 tries
    python scripts/bench_under_load.py --threads 0 2 --tries 3

For every ``threads`` setting (0: the runner's default, the job's share of the cores that other
processes leave free; 2: two threads whatever the machine does, the former default on this
2-core machine) each try runs ``python -m asym_sweep`` once alone and once while a second
process spins a Python busy loop on one core; the figures are ``timing.train_s`` from
``result.json``, and the ratio beside/alone per try. Run it on an otherwise quiet machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from asym_sweep import records

BUSY = "while True:\n    pass\n"


class RunFailed(Exception):
    """A measured run exited non-zero; its message is the run's own last line of stderr."""


def one_run(arch: str, threads: int, train_limit: int, seed: int) -> tuple[float, int]:
    """``(train seconds, threads the run used)`` of one run in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "asym_sweep",
            f"arch={arch}",
            "method=topk",
            f"seed={seed}",
            f"threads={threads}",
            f"dataset.train_limit={train_limit}",
            "train.epochs=1",
            "train.checkpoint=false",
            "progress=off",
            f"runs_root={tmp}",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RunFailed(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
        result, _ = records.read_result(records.run_folders(Path(tmp))[0])
        return result.timing.train_s, result.environment.threads


def beside_busy_loop(arch: str, threads: int, train_limit: int, seed: int) -> tuple[float, int]:
    busy = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        return one_run(arch, threads, train_limit, seed)
    finally:
        busy.kill()
        busy.wait()


def compare(arch: str, threads: int, train_limit: int, tries: int) -> None:
    """Print each try's seconds alone and beside the busy loop, then the worst and median ratio."""
    ratios = []
    for t in range(tries):
        alone, used_alone = one_run(arch, threads, train_limit, t)
        beside, used_beside = beside_busy_loop(arch, threads, train_limit, t)
        ratios.append(beside / alone)
        print(
            f"{threads:9} {t + 1:3} {alone:8.2f} {beside:9.2f} {beside / alone:6.2f}  ({used_alone}, {used_beside})",
            flush=True,
        )
    print(f"{threads:9} worst ratio {max(ratios):.2f}, median {sorted(ratios)[len(ratios) // 2]:.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="l3-256")
    p.add_argument(
        "--threads", nargs="+", type=int, default=[0, 2], help="threads= settings to compare (0: the default)"
    )
    p.add_argument("--tries", type=int, default=3)
    p.add_argument("--train-limit", type=int, default=20000)
    args = p.parse_args(argv)
    if args.tries < 1 or args.train_limit < 1 or any(t < 0 for t in args.threads):
        print(
            "bench_under_load: error: --tries and --train-limit must be at least 1, --threads at least 0",
            file=sys.stderr,
        )
        return 2
    print(f"# {args.arch} top-k, 1 epoch on {args.train_limit} images; train seconds alone and beside a busy loop")
    print(f"{'threads=':9} {'try':>3} {'alone s':>8} {'beside s':>9} {'ratio':>6}  threads used (alone, beside)")
    try:
        for threads in args.threads:
            compare(args.arch, threads, args.train_limit, args.tries)
    except RunFailed as err:
        print(f"bench_under_load: error: a run failed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
