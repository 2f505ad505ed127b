"""What one small tensor op costs right after the caches were flushed, as inside a training step.

    python scripts/bench_cold_ops.py                  # (make bench-cold-ops)
    python scripts/bench_cold_ops.py --flush-mb 96 --rounds 300

Every training step ends with Adam streaming all of its state (four float32 copies of
the weights: about 46 MB on l3-1024), which leaves the caches holding nothing the next
backward pass needs: not its tensors, and not the code and dispatcher data of the ops
it calls. A sparse rule's backward is a chain of small ops (sums, ``topk``, gathers,
writes), so what separates it from its products bound (``bench_backward.py --bounds``)
is the cost of each op when it runs cold. This script measures that: each op alone,
timed once per round, either after running itself (warm) or after copying a buffer
larger than the caches (cold), interleaved; it prints medians and their ratio.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from typing import Callable

import torch

from asym_sweep.allocator import keep_freed_memory


def small_ops(width: int, batch: int, k: int) -> dict[str, Callable[[], object]]:
    """The kinds of op a top-k layer backward issues, on the sizes it issues them (batch x width)."""
    g = torch.randn(batch, width)
    s = g.abs().sum(0)
    rows = s.topk(k, sorted=False).indices
    gc = torch.randn(batch, k)
    w = torch.randn(width, width)
    buf = torch.zeros(width, width)
    block = torch.randn(k, width)
    return {
        "abs (batch x width)": lambda: g.abs(),
        "column sums (batch x width)": lambda: g.sum(0),
        "topk of a width vector": lambda: s.topk(k, sorted=False),
        "index_select of k columns": lambda: g.index_select(1, rows),
        "index_select of k weight rows": lambda: w.index_select(0, rows),
        "matmul (batch x k) @ (k x width)": lambda: gc @ block,
        "index_copy_ of k rows": lambda: buf.index_copy_(0, rows, block),
        "add a scalar to a width vector": lambda: s + 1.0,
    }


def time_once(op: Callable[[], object]) -> float:
    start = time.perf_counter()
    op()
    return time.perf_counter() - start


def measure(
    ops: dict[str, Callable[[], object]], flush_mb: float, rounds: int, seed: int
) -> dict[str, tuple[float, float]]:
    """Median seconds per op, warm and right after a cache-flushing copy, interleaved."""
    src = torch.ones(max(1, int(flush_mb * 2**20 / 4)))
    dst = torch.empty_like(src)
    samples: dict[tuple[str, bool], list[float]] = {(name, cold): [] for name in ops for cold in (False, True)}
    order = random.Random(seed)
    cases = list(samples)
    for name in ops:  # first calls allocate and load code: not part of either figure
        ops[name]()
    for _ in range(rounds):
        order.shuffle(cases)
        for name, cold in cases:
            if cold:
                dst.copy_(src)
            else:
                ops[name]()
            samples[(name, cold)].append(time_once(ops[name]))
    return {name: (statistics.median(samples[(name, False)]), statistics.median(samples[(name, True)])) for name in ops}


def render(results: dict[str, tuple[float, float]]) -> str:
    width = max(len(name) for name in results)
    lines = [f"{'op':<{width}}  warm us  cold us  cold/warm"]
    for name, (warm, cold) in results.items():
        lines.append(f"{name:<{width}}  {warm * 1e6:7.1f}  {cold * 1e6:7.1f}  {cold / warm:9.1f}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--k", type=int, default=40)
    p.add_argument("--flush-mb", type=float, default=96.0, help="size of the copy that evicts the caches (MiB)")
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in ("width", "batch", "k", "rounds", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.k > args.width:
        p.error("--k must be at most --width")
    if args.flush_mb <= 0:
        p.error("--flush-mb must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keep_freed_memory()  # as training runs
    torch.set_num_threads(args.threads)
    results = measure(small_ops(args.width, args.batch, args.k), args.flush_mb, args.rounds, args.seed)
    print(
        f"# {args.threads} threads, torch {torch.__version__}, batch {args.batch}, width {args.width}, k {args.k}; "
        f"cold: after copying {args.flush_mb:g} MiB; medians of {args.rounds} interleaved calls"
    )
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
