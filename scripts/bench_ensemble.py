"""Would training several seeds as one batched ensemble raise sweep throughput? (issue 6)

    python scripts/bench_ensemble.py                      # l1-64 l3-256 l3-1024 l5-1024, 5 seeds
    python scripts/bench_ensemble.py --archs l2-128 --members 3 --rounds 50

For each architecture, ``members`` copies of the MLP (one per seed) take one
training step each on their own mini-batch, either one after the other (what the
sweep does, one process per run) or stacked: weights ``(members, out, in)``, one
batched matrix product per layer (``torch.baddbmm``), one fused Adam step over the
stacked tensors. Dense backprop (``dense`` method, no dropout) is measured: it is
the simplest rule to stack, so its gain bounds what stacking would give the
sparse rules, whose selections differ per member. The script first checks that
the stacked step gives each member the numbers of its separate step (float
tolerance), then times both interleaved and prints the speed-up per arch and,
weighted by each arch's share of the full sweep's dense step time, for the whole grid.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import Tensor

from asym_sweep.allocator import keep_freed_memory
from asym_sweep.grid import FASHION_ARCHS as THESIS_ARCHS
from asym_sweep.model import parse_arch
from asym_sweep.train import make_adam

DEFAULT_ARCHS = ("l1-64", "l3-256", "l3-1024", "l5-1024")


def separate_models(arch: str, members: int) -> list[list[tuple[Tensor, Tensor]]]:
    models = []
    for seed in range(members):
        gen = torch.Generator().manual_seed(seed)
        layers = []
        for n_in, n_out in parse_arch(arch).layer_shapes():
            bound = (6.0 / (n_in + n_out)) ** 0.5  # Xavier uniform, as model.py
            w = ((torch.rand(n_out, n_in, generator=gen) * 2 - 1) * bound).requires_grad_(True)
            layers.append((w, torch.zeros(n_out, requires_grad=True)))
        models.append(layers)
    return models


def stacked_from(models: list[list[tuple[Tensor, Tensor]]]) -> list[tuple[Tensor, Tensor]]:
    return [
        (
            torch.stack([m[i][0].detach() for m in models]).requires_grad_(True),
            torch.stack([m[i][1].detach() for m in models]).unsqueeze(1).requires_grad_(True),
        )
        for i in range(len(models[0]))
    ]


def forward_one(layers: list[tuple[Tensor, Tensor]], x: Tensor) -> Tensor:
    for i, (w, b) in enumerate(layers):
        x = F.linear(x, w, b)
        if i < len(layers) - 1:
            x = F.relu(x)
    return x


def forward_stacked(layers: list[tuple[Tensor, Tensor]], x: Tensor) -> Tensor:
    for i, (w, b) in enumerate(layers):
        x = torch.baddbmm(b, x, w.transpose(1, 2))
        if i < len(layers) - 1:
            x = F.relu(x)
    return x


def step_separate(models, optimizers, xs: Tensor, ys: Tensor) -> None:
    for layers, opt, x, y in zip(models, optimizers, xs, ys):
        F.cross_entropy(forward_one(layers, x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def step_stacked(layers, opt, xs: Tensor, ys: Tensor) -> None:
    logits = forward_stacked(layers, xs)  # (members, batch, 10)
    # Sum of the members' mean losses: each member's gradient is its own loss's gradient.
    loss = F.cross_entropy(logits.flatten(0, 1), ys.flatten(), reduction="none").view(ys.shape).mean(1).sum()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def check_equal(arch: str, members: int, batch: int, steps: int = 5) -> float:
    """Largest |difference| between stacked and separate weights after a few steps."""
    models = separate_models(arch, members)
    stacked = stacked_from(models)
    opts = [make_adam([p for layer in m for p in layer]) for m in models]
    opt = make_adam([p for layer in stacked for p in layer])
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        xs, ys = torch.rand(members, batch, 784, generator=gen), torch.randint(0, 10, (members, batch), generator=gen)
        step_separate(models, opts, xs, ys)
        step_stacked(stacked, opt, xs, ys)
    diff = 0.0
    with torch.no_grad():
        for i, (w, b) in enumerate(stacked):
            for j, m in enumerate(models):
                diff = max(diff, float((w[j] - m[i][0]).abs().max()), float((b[j, 0] - m[i][1]).abs().max()))
    return diff


def time_arch(arch: str, members: int, batch: int, warmup: int, rounds: int, seed: int) -> tuple[float, float]:
    """Median seconds of one step of all members: (one after the other, stacked)."""
    models = separate_models(arch, members)
    stacked = stacked_from(models)
    opts = [make_adam([p for layer in m for p in layer]) for m in models]
    opt = make_adam([p for layer in stacked for p in layer])
    gen = torch.Generator().manual_seed(seed)
    xs, ys = torch.rand(members, batch, 784, generator=gen), torch.randint(0, 10, (members, batch), generator=gen)
    runs = {
        "separate": lambda: step_separate(models, opts, xs, ys),
        "stacked": lambda: step_stacked(stacked, opt, xs, ys),
    }
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in runs}
    order = random.Random(seed)
    for _ in range(rounds):
        names = list(runs)
        order.shuffle(names)
        for name in names:
            start = time.perf_counter()
            runs[name]()
            samples[name].append(time.perf_counter() - start)
    return statistics.median(samples["separate"]), statistics.median(samples["stacked"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS))
    p.add_argument("--grid", action="store_true", help="all 25 thesis archs, and the sweep-weighted speed-up")
    p.add_argument("--members", type=int, default=5, help="seeds per ensemble (the thesis: 5)")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    archs = list(THESIS_ARCHS) if args.grid else args.archs
    try:
        for arch in archs:
            parse_arch(arch)
        if args.members < 2:
            raise ValueError("--members must be at least 2")
    except ValueError as err:
        print(f"bench_ensemble: error: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as training does
    diff = check_equal(archs[0], args.members, args.batch)
    print(f"# {args.members} members, batch {args.batch}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"stacked vs separate weights after 5 steps on {archs[0]}: max |diff| = {diff:.2e}")
    print(f"{'arch':>8}  {'separate ms':>11}  {'stacked ms':>10}  {'speed-up':>8}")
    total_sep = total_stk = 0.0
    for arch in archs:
        sep, stk = time_arch(arch, args.members, args.batch, args.warmup, args.rounds, args.seed)
        total_sep, total_stk = total_sep + sep, total_stk + stk
        print(f"{arch:>8}  {sep * 1e3:11.2f}  {stk * 1e3:10.2f}  {sep / stk:8.2f}")
    # Every arch runs the same number of steps in the sweep, so summed step times weight them.
    print(f"all listed archs, weighted by their step time: speed-up {total_sep / total_stk:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
