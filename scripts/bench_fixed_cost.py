"""The sparse backward's fixed cost per layer: what a layer of ours costs beyond ``nn.Linear``'s
backward where the products cost next to nothing (width 16), on the fused and the pure-torch path.

    python scripts/bench_fixed_cost.py            # (make bench-fixed-cost) l3-16, batch 50, 1 thread
    python scripts/bench_fixed_cost.py --arch l5-16 --threads 2 --steps 2000

Per case the median backward (``loss.backward()``) over ``--steps`` steps, all cases interleaved
step by step in one process, so that a drift in machine speed hits them alike. The fixed cost per
layer is ``(ours - nn.Linear's) / sparse layers``. The rules' k are scaled to width 16 (top-k k=4,
partial k1=4 k2=8, complete k=4) so that every layer is sparsified, and every rule's batch-scope
default is used, as in the grid. Run it with nothing else running.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from asym_sweep.allocator import keep_freed_memory
from asym_sweep.engine import fused
from asym_sweep.model import MLP, parse_arch
from asym_sweep.sparse import make_rule

# partial's per-example input selection (the grid's reading) is real work on the 784 pixels, not a
# fixed cost: "partial xbatch" (one input set per batch) isolates the fixed part.
RULES = {
    "topk": ("topk", {"k": 4}),
    "partial": ("partial", {"k1": 4, "k2": 8, "x_scope": "sample"}),
    "partial xbatch": ("partial", {"k1": 4, "k2": 8, "x_scope": "batch"}),
    "complete": ("complete", {"k": 4}),
}


def plain_mlp(arch: str) -> nn.Module:
    a = parse_arch(arch)
    layers: list[nn.Module] = []
    for n, (i, o) in enumerate(a.layer_shapes()):
        layers += [nn.Linear(i, o)] + ([nn.ReLU()] if n < a.depth else [])
    return nn.Sequential(*layers)


def models(arch: str) -> dict[str, nn.Module]:
    a = parse_arch(arch)
    out: dict[str, nn.Module] = {"nn.Linear": plain_mlp(arch)}
    for name, (rule, params) in RULES.items():
        for path in ("fused", "torch"):
            m = MLP(a, [make_rule(rule, **params)] * (a.depth + 1), nonnegative_pixels=True)
            m.use_fused(path == "fused")
            out[f"{name} {path}"] = m
    return out


def sparse_layers(model: nn.Module) -> int:
    return sum(not layer.native for layer in model.layers) if isinstance(model, MLP) else 0


def measure(cases: dict[str, nn.Module], steps: int, warmup: int) -> dict[str, float]:
    """Median backward microseconds of each case, the cases interleaved step by step."""
    x, y = torch.rand(50, 784), torch.randint(0, 10, (50,))
    times: dict[str, list[float]] = {name: [] for name in cases}
    for step in range(warmup + steps):
        for name, model in cases.items():
            loss = F.cross_entropy(model(x), y)
            start = time.perf_counter()
            loss.backward()
            if step >= warmup:
                times[name].append(time.perf_counter() - start)
            for p in model.parameters():
                p.grad = None
    return {name: statistics.median(v) * 1e6 for name, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="l3-16")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    try:
        parse_arch(args.arch)
        if args.steps < 1 or args.warmup < 0 or args.threads < 1:
            raise ValueError("--steps and --threads must be at least 1, --warmup at least 0")
    except ValueError as err:
        print(f"bench_fixed_cost: error: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    if fused.module() is None:
        print(
            "bench_fixed_cost: note: the fused backward could not be built here; its rows take the pure-torch path",
            file=sys.stderr,
        )
    cases = models(args.arch)
    us = measure(cases, args.steps, args.warmup)
    base = us["nn.Linear"]
    print(f"{args.arch}, batch 50, {args.threads} thread(s), median of {args.steps} interleaved steps")
    print(f"{'case':22} {'backward us':>11} {'fixed us/layer':>14}")
    print(f"{'nn.Linear':22} {base:11.1f} {'':>14}")
    for name, model in cases.items():
        if name != "nn.Linear":
            print(f"{name:22} {us[name]:11.1f} {(us[name] - base) / sparse_layers(model):14.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
