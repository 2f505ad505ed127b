"""Our layers in anyone's training loop: an MLP of `SparseLinear` layers from the public API,
trained with a plain ``loss.backward(); opt.step(); opt.zero_grad()``, against the same MLP of
``nn.Linear`` with the same optimizer.

    python scripts/bench_ordinary_loop.py                       # l3-1024, batch 50, 2 threads, default Adam
    python scripts/bench_ordinary_loop.py --fused --archs l1-64 l3-1024

No set-up beyond the public API: ``MLP(parse_arch(arch), [make_rule(...)] * layers)`` and
``torch.optim.Adam(model.parameters())`` (``--fused``: ``fused=True`` for every model). Steps of
the models are interleaved in a random order each round; medians after a warm-up. Ratios are
to the ``nn.Linear`` MLP in the same process. Two more rows write the same MLP with the
functional ``sparse_linear`` (``fn topk``: ``scope="batch"``, the module's selection;
``fn topk/ex``: the function's own default, per example), to show what the function costs.

Every step takes the next of ``--batches`` random mini-batches, as training does. With one
fixed batch top-k keeps the same rows step after step, so the other rows' Adam state stays
exactly zero, and on this project's CPU ``torch.sqrt`` of zeros is several times slower than of
other values (``scripts/bench_adam_zero_state.py``): the default Adam of the top-k MLP then
costs more than ``nn.Linear``'s, an artefact of the fixed batch. The warm-up (500 steps) lets
the optimizer state fill as it does early in training.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from asym_sweep.model import MLP, parse_arch
from asym_sweep.sparse import make_rule, sparse_linear

PHASES = ("forward", "backward", "optimizer", "step")


def linear_mlp(arch: str) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    a = parse_arch(arch)
    for i, (n_in, n_out) in enumerate(a.layer_shapes()):
        layers.append(nn.Linear(n_in, n_out))
        if i < a.depth:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def ours(arch: str, method: str, **params) -> nn.Module:
    a = parse_arch(arch)
    return MLP(a, [make_rule(method, **params)] * (a.depth + 1))


class FunctionalMLP(nn.Module):
    """The same MLP written with the functional ``sparse_linear`` on ``nn.Linear`` parameters, as a
    user who calls it in their own forward would: a rule built on every call, no gradient sink,
    and no promise that an input is non-negative."""

    def __init__(self, arch: str, method: str, **params) -> None:
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in parse_arch(arch).layer_shapes())
        self.method, self.params = method, params

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for i, lin in enumerate(self.linears):
            h = sparse_linear(h, lin.weight, lin.bias, method=self.method, **self.params)
            if i < len(self.linears) - 1:
                h = F.relu(h)
        return h


def models_for(arch: str) -> dict[str, nn.Module]:
    """The compared models by row name; the first is the reference of the ratios."""
    return {
        "nn.Linear": linear_mlp(arch),
        "ours dense": ours(arch, "dense"),
        "ours topk": ours(arch, "topk", k=40),
        # the functional face: with the module's selection (batch scope), and with its own default scope
        "fn topk": FunctionalMLP(arch, "topk", k=40, scope="batch"),
        "fn topk/ex": FunctionalMLP(arch, "topk", k=40),
    }


def step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    t0 = time.perf_counter()
    loss = F.cross_entropy(model(x), y)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    opt.zero_grad()
    t3 = time.perf_counter()
    return {"forward": t1 - t0, "backward": t2 - t1, "optimizer": t3 - t2, "step": t3 - t0}


def bench(
    arch: str, batch: int, fused: bool, warmup: int, rounds: int, seed: int, n_batches: int = 100
) -> list[dict[str, object]]:
    torch.manual_seed(seed)
    models = models_for(arch)
    opts = {
        name: torch.optim.Adam(m.parameters(), fused=fused) if fused else torch.optim.Adam(m.parameters())
        for name, m in models.items()
    }
    data = [(torch.rand(batch, 784), torch.randint(0, 10, (batch,))) for _ in range(n_batches)]
    samples: dict[str, dict[str, list[float]]] = {n: {k: [] for k in PHASES} for n in models}
    order = list(models)
    rng = random.Random(seed)
    for r in range(warmup + rounds):
        rng.shuffle(order)
        for name in order:
            times = step(models[name], opts[name], *data[r % n_batches])
            if r >= warmup:
                for k, v in times.items():
                    samples[name][k].append(v)
    med = {n: {k: statistics.median(v) for k, v in s.items()} for n, s in samples.items()}
    ref = med["nn.Linear"]
    return [
        {
            "arch": arch,
            "model": n,
            **{f"{k}_ms": 1e3 * m[k] for k in PHASES},
            "backward_ratio": m["backward"] / ref["backward"],
            "step_ratio": m["step"] / ref["step"],
        }
        for n, m in med.items()
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", nargs="+", default=["l3-1024"])
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fused", action="store_true", help="Adam(fused=True) for every model")
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--batches", type=int, default=100, help="random mini-batches, one per step in turn")
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if min(args.batch, args.threads, args.rounds, args.batches) < 1 or args.warmup < 0:
        print(
            "bench_ordinary_loop: error: --batch, --threads, --rounds and --batches must be at least 1, --warmup at "
            "least 0",
            file=sys.stderr,
        )
        return 2
    try:
        for arch in args.archs:
            parse_arch(arch)
    except ValueError as err:
        print(f"bench_ordinary_loop: error: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    print(
        f"# plain loop, {'fused' if args.fused else 'default'} Adam, batch {args.batch}, {args.threads} threads; "
        f"{args.batches} batches in turn, {args.warmup} warm-up steps, medians of {args.rounds} interleaved steps; "
        "ratios to the nn.Linear MLP"
    )
    print(
        f"{'arch':8} {'model':11} {'fwd ms':>8} {'bwd ms':>8} {'adam ms':>8} {'step ms':>8} {'bwd/lin':>8} "
        f"{'step/lin':>8}"
    )
    for arch in args.archs:
        for row in bench(arch, args.batch, args.fused, args.warmup, args.rounds, args.seed, args.batches):
            print(
                f"{row['arch']:8} {row['model']:11} {row['forward_ms']:8.3f} {row['backward_ms']:8.3f} "
                f"{row['optimizer_ms']:8.3f} "
                f"{row['step_ms']:8.3f} {row['backward_ratio']:8.3f} {row['step_ratio']:8.3f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
