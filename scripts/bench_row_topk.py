"""Row-wise top-k: the compiled helper (`native.py`) against torch.topk, per call, in one process.

The shapes the sweep selects per row: a batch of 50 pixel rows (784 wide, top-200, ties at the
k-th value), a hidden ReLU input (50 x 1024, top-200), complete's W~ block (170 x 1024,
top-170, signed), on 1 and 2 threads; calls interleaved, best of ``--repeats`` batches of
``--calls`` calls. Prints microseconds per call and the ratio helper / torch.

    python scripts/bench_row_topk.py [--calls 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

import torch

from asym_sweep import native
from asym_sweep.data import DataError, load_splits
from asym_sweep.selection import native_ties_agree, topk_rows, topk_rows_torch


def inputs(seed: int) -> list[tuple[str, torch.Tensor, int, bool]]:
    gen = torch.Generator().manual_seed(seed)
    try:
        pixels = load_splits("fashion_mnist", None, train_limit=50).train_x[:50].contiguous()
        pixel_name = "pixels (Fashion-MNIST) 50x784, k=200"
    except DataError:
        pixels = torch.randint(0, 256, (50, 784), generator=gen) / 255
        pixel_name = "pixels (256-level noise) 50x784, k=200"
    return [
        (pixel_name, pixels, 200, True),
        ("ReLU input 50x1024, k=200", torch.randn(50, 1024, generator=gen).relu(), 200, True),
        ("complete's W~ 170x1024, k=170", torch.randn(170, 1024, generator=gen), 170, False),
    ]


def best_us(fn: Callable[[], object], calls: int, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.calls < 1 or args.repeats < 1:
        print("bench_row_topk: error: --calls and --repeats must be at least 1", file=sys.stderr)
        return 2
    found = native.helper()
    if found is None:
        print(
            "bench_row_topk: error: no compiled helper here (no C++ compiler, or ASYM_SWEEP_NATIVE=0): nothing to "
            "compare",
            file=sys.stderr,
        )
        return 2
    print(
        f"# helper {found.path.name}; ties resolved as torch's: {native_ties_agree()}; "
        f"on torch's threads: {found.shares_torch_threads}; best of {args.repeats} x {args.calls} calls"
    )
    print(f"{'input':40s} {'threads':>7s} {'helper us':>10s} {'torch us':>9s} {'helper/torch':>13s}")
    before = torch.get_num_threads()
    try:
        for name, v, k, nonnegative in inputs(args.seed):
            for threads in (1, 2):
                torch.set_num_threads(threads)
                ours = best_us(lambda: topk_rows(v, k, nonnegative), args.calls, args.repeats)
                theirs = best_us(lambda: topk_rows_torch(v, k, nonnegative), args.calls, args.repeats)
                print(f"{name:40s} {threads:7d} {ours:10.1f} {theirs:9.1f} {ours / theirs:13.2f}")
    finally:
        torch.set_num_threads(before)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
