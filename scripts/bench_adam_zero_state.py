"""Does Adam cost more when much of its state is exactly zero? (issue 18: our layers in an ordinary loop)

    python scripts/bench_adam_zero_state.py                  # three 1024x1024 tensors (l3-1024's), 2 threads
    python scripts/bench_adam_zero_state.py --size 256 --threads 1

A batch-scope sparse rule writes only the selected rows of a weight's gradient, so until a row is
first selected its Adam second moment (``exp_avg_sq``) stays exactly 0. Adam takes its square
root every step, and on this project's CPU ``torch.sqrt`` of zeros is several times slower than
of other values. This script prints, in one process and interleaved, the median time of
``torch.sqrt`` and of one step of the default (single-tensor) and fused Adam with a zero and a
non-zero second moment, and the ratio of the two.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from typing import Callable

import torch


def sqrt_case(size: int, zero: bool) -> Callable[[], object]:
    v = torch.zeros(size, size) if zero else torch.rand(size, size) + 1e-3
    return v.sqrt


def adam_case(size: int, tensors: int, zero: bool, fused: bool) -> Callable[[], object]:
    """One Adam step over ``tensors`` square parameters whose second moment is all zero or not."""
    params = [torch.nn.Parameter(torch.rand(size, size)) for _ in range(tensors)]
    for p in params:
        p.grad = torch.zeros_like(p)  # the unselected rows' gradient: zero, leaving a zero moment zero
    opt = torch.optim.Adam(params, fused=fused) if fused else torch.optim.Adam(params)
    opt.step()  # creates the state
    for p in params:
        opt.state[p]["exp_avg_sq"].copy_(torch.zeros_like(p) if zero else torch.rand_like(p) * 1e-6)
    return opt.step


def measure(cases: dict[str, Callable[[], object]], warmup: int, rounds: int, seed: int) -> dict[str, float]:
    """Median seconds of each case, interleaved in a fresh random order every round."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    rng = random.Random(seed)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            start = time.perf_counter()
            cases[name]()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in samples.items()}


def build(size: int, tensors: int) -> dict[str, Callable[[], object]]:
    cases: dict[str, Callable[[], object]] = {}
    for zero in (True, False):
        state = "zero" if zero else "non-zero"
        cases[f"sqrt|{state}"] = sqrt_case(size, zero)
        cases[f"default Adam|{state}"] = adam_case(size, tensors, zero, fused=False)
        cases[f"fused Adam|{state}"] = adam_case(size, tensors, zero, fused=True)
    return cases


def render(medians: dict[str, float]) -> str:
    ops = dict.fromkeys(name.split("|")[0] for name in medians)
    lines = [f"{'op':14} {'zero ms':>9} {'non-zero ms':>12} {'zero/non-zero':>14}"]
    for op in ops:
        z, n = medians[f"{op}|zero"], medians[f"{op}|non-zero"]
        lines.append(f"{op:14} {1e3 * z:9.3f} {1e3 * n:12.3f} {z / n:14.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=1024, help="each parameter is size x size")
    p.add_argument("--tensors", type=int, default=3, help="parameters in the Adam step")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if min(args.size, args.tensors, args.threads, args.rounds) < 1 or args.warmup < 0:
        p.error("--size, --tensors, --threads and --rounds must be at least 1, --warmup at least 0")
    torch.set_num_threads(args.threads)
    print(
        f"# {args.tensors} tensors of {args.size}x{args.size}, {args.threads} threads, medians of {args.rounds} "
        "interleaved rounds"
    )
    print(render(measure(build(args.size, args.tensors), args.warmup, args.rounds, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
