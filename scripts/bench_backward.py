"""Benchmark the backward rules against dense backprop and plain ``nn.Linear`` autograd.

    python scripts/bench_backward.py                        # (make bench) l1-64 l3-256 l3-1024 l5-1024, 4 methods
    python scripts/bench_backward.py --archs l3-1024 --methods topk dense --scopes batch sample
    python scripts/bench_backward.py --archs l3-1024 --bounds  # + lower bounds of top-k's backward (see BOUNDS)

For each (arch, method, scope, batch size) one training step is timed phase by
phase: forward (incl. loss), backward (and, inside it, index selection apart
from the products), Adam step, and the whole step. All configurations are
warmed up, then measured *interleaved* (per arch, one step of each case in a
random order, many rounds) so that drifts in machine speed hit them alike; the table gives medians and the
interquartile spread. Ratios are within one process: to ``dense`` (our dense
path, same arch) and to ``plain`` (the same MLP from ``nn.Linear`` with ordinary
autograd; for ``dropout``, ``plain-dropout``: with ``nn.Dropout`` after each hidden
ReLU). ``flops`` is the multiply-add ratio of backward to dense, counted over the steps taken.
On CUDA every phase boundary is synchronised. Results go to a new JSON file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

from asym_sweep import native
from asym_sweep.allocator import keep_freed_memory
from asym_sweep.data import DataError, load_splits
from asym_sweep.dropout import helper_masks_agree
from asym_sweep.engine.procedure import Procedure, make_procedure
from asym_sweep.grid import method_from_conf
from asym_sweep.methods import MethodConfig
from asym_sweep.model import build_mlp, parse_arch
from asym_sweep.sparse import LinearGrads, Needs, TopK
from asym_sweep.timing import Timers, device_sync
from asym_sweep.train import make_adam

PHASES = ("forward", "backward", "select", "optimizer", "step")
DEFAULT_ARCHS = ("l1-64", "l3-256", "l3-1024", "l5-1024")
DEFAULT_METHODS = ("plain", "plain-dropout", "dense", "dropout", "topk", "partial", "complete")


@dataclass
class Case:
    arch: str
    method: str
    scope: str
    batch: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    # The training loop's own step (rule hooks, VR-PGE's two passes); None for `plain`.
    procedure: Procedure | None
    samples: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})


# The references built from nn.Linear with ordinary autograd: `plain` for the dense path,
# `plain-dropout` (nn.Dropout after every hidden ReLU, as the dropout method) for the baseline.
PLAIN = {"plain": "dense", "plain-dropout": "dropout"}


def plain_mlp(arch: str, seed: int, dropout: float = 0.0) -> nn.Module:
    """The reference: the same MLP from nn.Linear (and nn.Dropout), ordinary autograd."""
    a = parse_arch(arch)
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(a.layer_shapes()):
        layers.append(nn.Linear(n_in, n_out))
        if i < a.depth:
            layers += [nn.ReLU()] + ([nn.Dropout(dropout)] if dropout > 0.0 else [])
    return nn.Sequential(nn.Flatten(), *layers)


# A peer: meProp's own technique as its paper and code describe it ("unified" top-k), written
# here from that description: per hidden layer, |g| summed over the batch, the k largest,
# gather those k columns of g, two compact products, the weight gradient index_copy_'d into a
# zeroed dense tensor (autograd then accumulates it as any gradient); the output layer dense.
class _MePropFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, k):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.k = k
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        idx = g.abs().sum(0).topk(min(ctx.k, g.shape[1])).indices
        gk = g.index_select(1, idx)
        grad_x = gk @ weight.index_select(0, idx)
        grad_w = torch.zeros_like(weight).index_copy_(0, idx, gk.t() @ x)
        grad_b = torch.zeros(weight.shape[0], dtype=g.dtype, device=g.device).index_copy_(0, idx, gk.sum(0))
        return grad_x, grad_w, grad_b, None


class MePropLinear(nn.Linear):
    def __init__(self, n_in: int, n_out: int, k: int) -> None:
        super().__init__(n_in, n_out)
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _MePropFunction.apply(x, self.weight, self.bias, self.k)


def meprop_mlp(arch: str, seed: int, k: int) -> nn.Module:
    a = parse_arch(arch)
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(a.layer_shapes()):
        layers += [MePropLinear(n_in, n_out, k), nn.ReLU()] if i < a.depth else [nn.Linear(n_in, n_out)]
    return nn.Sequential(nn.Flatten(), *layers)


# Lower bounds for top-k's backward (--bounds), to tell how far its ratio to dense can fall
# on this machine. Both skip work the rule must do, so neither is a training method:
# `topk-floor` does no arithmetic in the sparse layers (an uninitialised input gradient, an
# empty set of rows for the weight gradient): what remains is autograd, the loss, the ReLUs,
# the dense output layer and the custom function's own cost. `topk-products` adds only the
# two products of a layer (``g[:, :k] @ W[:k]`` and ``g[:, :k]^T x``) on fixed views: no
# selection, gather or write. Both still hand every parameter a (zero) gradient through the
# layer's GradSink, so that Adam streams all of its state as in training and the backward
# meets caches as cold as top-k's does. Weights of the sparse layers never change.
def _no_rows(
    x: torch.Tensor, weight: torch.Tensor, needs: Needs
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
    """(weight, bias, rows) gradients that select no row: the sink zeroes, writes nothing."""
    rows = torch.empty(0, dtype=torch.long, device=x.device)
    return (
        weight.new_empty(0, weight.shape[1]) if needs.weight else None,
        weight.new_empty(0) if needs.bias else None,
        rows,
    )


@dataclass(kw_only=True)
class _TopKFloor(TopK):
    def backward(self, g, x, weight, needs, clock):  # type: ignore[override]
        return LinearGrads(torch.empty_like(x) if needs.input else None, *_no_rows(x, weight, needs))


@dataclass(kw_only=True)
class _TopKProducts(TopK):
    def backward(self, g, x, weight, needs, clock):  # type: ignore[override]
        k = self.current_k(g.shape[1])
        gc = g[:, :k]
        if needs.weight:
            gc.t() @ x  # computed, not written: the bound counts the product only
        return LinearGrads(gc @ weight[:k] if needs.input else None, *_no_rows(x, weight, needs))


BOUNDS: dict[str, type[TopK]] = {"topk-floor": _TopKFloor, "topk-products": _TopKProducts}


def bound_rules(method: str, n_layers: int) -> list[TopK]:
    """The rules of a --bounds case: top-k's k (conf/method/topk.yaml), batch scope."""
    k = int(method_from_conf("topk").params["k"])
    return [BOUNDS[method](k=k) for _ in range(n_layers)]


def method_options(method: str) -> tuple[str, dict[str, object]]:
    """``partial:x_scope=sample,k2=100`` -> ("partial", {"x_scope": "sample", "k2": 100}): a
    conf/method name with parameters replaced, so a reading (docs/methods.md) can be benched."""
    name, _, options = method.partition(":")
    params = {}
    for item in filter(None, options.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{method}: parameters are key=value, got {item!r}")
        params[key] = yaml.safe_load(value)
    return name, params


def method_spec(method: str, scope: str, k: int | None = None) -> MethodConfig:
    """A conf/method file's method in ``scope``; ``k`` replaces top-k's k (meProp's MNIST setting: 30)."""
    name, options = method_options(method)
    if name == "dense":
        return MethodConfig(name="dense", rule="dense", scope=scope)
    spec = method_from_conf(name)
    params = {**spec.params, "k": k} if k is not None and name == "topk" else dict(spec.params)
    return MethodConfig(spec.name, spec.rule, {**params, **options}, scope, spec.dropout, spec.sparsify_output)


def topk_k(k: int | None) -> int:
    return int(k if k is not None else method_from_conf("topk").params["k"])


def make_case(
    arch: str,
    method: str,
    scope: str,
    batch: int,
    device: torch.device,
    seed: int,
    compile: bool = False,
    k: int | None = None,
) -> Case:
    if method == "meprop":
        model = meprop_mlp(arch, seed, topk_k(k)).to(device).train()
        return Case(arch, method, scope, batch, model, make_adam(model.parameters()), None)
    if method in PLAIN:
        model = plain_mlp(arch, seed, method_spec(PLAIN[method], "batch").dropout).to(device).train()
        optimizer = make_adam(model.parameters())
        return Case(arch, method, scope, batch, torch.compile(model) if compile else model, optimizer, None)
    a = parse_arch(arch)
    if method in BOUNDS:
        model = build_mlp(a, bound_rules(method, a.depth + 1), seed=seed).to(device).train()
    else:
        spec = method_spec(method, scope, k)
        # As train.run builds it: the inputs (pixels in [0, 1], `measure`) are non-negative.
        model = (
            build_mlp(a, spec.layer_rules(a.depth + 1), spec.dropout, seed=seed, nonnegative_pixels=True)
            .to(device)
            .train()
        )
    optimizer = make_adam(model.parameters())
    # Set up exactly as train.run does.
    procedure = make_procedure(model, optimizer, Timers(device_sync(device)), seed)
    if compile:
        # torch.compile of the model's forward (and, through AOTAutograd, its backward);
        # the procedure reaches the layers through the compiled wrapper.
        procedure.model = torch.compile(model)  # type: ignore[assignment]
    return Case(arch, method, scope, batch, model, optimizer, procedure)


def flop_ratio(case: Case) -> float:
    """Backward multiply-adds over dense backprop's, as counted by the steps taken."""
    if case.method == "meprop":
        return math.nan  # the peer counts nothing (its products are top-k's)
    if case.procedure is None:
        return 1.0
    m = case.procedure.madds
    return m.backward / m.dense_backward


def step(case: Case, x: torch.Tensor, y: torch.Tensor, sync, record: bool) -> None:
    """One training step, timed per phase (the training loop's own procedure)."""
    if case.procedure is not None:
        procedure_step(case, x, y, sync, record)
        return
    marks = [0.0] * 4
    if sync:
        sync()
    marks[0] = time.perf_counter()
    loss = F.cross_entropy(case.model(x), y)
    if sync:
        sync()
    marks[1] = time.perf_counter()
    loss.backward()
    if sync:
        sync()
    marks[2] = time.perf_counter()
    case.optimizer.step()
    case.optimizer.zero_grad(set_to_none=True)
    if sync:
        sync()
    marks[3] = time.perf_counter()
    if record:
        s = case.samples
        s["forward"].append(marks[1] - marks[0])
        s["backward"].append(marks[2] - marks[1])
        s["select"].append(0.0)
        s["optimizer"].append(marks[3] - marks[2])
        s["step"].append(marks[3] - marks[0])


def procedure_step(case: Case, x: torch.Tensor, y: torch.Tensor, sync, record: bool) -> None:
    assert case.procedure is not None
    timers = case.procedure.timers
    before = timers.totals()
    if sync:
        sync()
    start = time.perf_counter()
    case.procedure.step(x, y)
    if sync:
        sync()
    end = time.perf_counter()
    if record:
        after = timers.totals()
        for phase in ("forward", "backward", "select", "optimizer"):
            case.samples[phase].append(after[phase] - before[phase])
        case.samples["step"].append(end - start)


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return q[0], statistics.median(values), q[2]


def pixel_source(choice: str, largest_batch: int) -> tuple[torch.Tensor | None, str]:
    """The first training images of Fashion-MNIST where ``choice`` allows and they are found
    (as training finds them: ASYM_SWEEP_DATA, torchvision's or Debian's layout), else None."""
    if choice == "synthetic":
        return None, "synthetic pixels (256 levels, uniform)"
    try:
        splits = load_splits("fashion_mnist", None, train_limit=largest_batch)
    except DataError as err:
        if choice == "dataset":
            raise
        return None, f"synthetic pixels (256 levels, uniform; no dataset: {str(err).splitlines()[0][:80]})"
    return splits.train_x, f"Fashion-MNIST's first training images ({splits.source})"


def measure(
    cases: list[Case],
    device: torch.device,
    warmup: int,
    rounds: int,
    seed: int,
    progress: bool,
    images: torch.Tensor | None = None,
) -> None:
    gen = torch.Generator().manual_seed(seed)
    # Pixels in 256 levels, as the datasets store them (real images where given): per-example
    # selection of the input meets ties at its k-th value, as in training; torch.rand has none.
    batches = {
        b: (
            (images[:b] if images is not None else torch.randint(0, 256, (b, 784), generator=gen) / 255).to(device),
            torch.randint(0, 10, (b,), generator=gen).to(device),
        )
        for b in {c.batch for c in cases}
    }
    sync = device_sync(device)
    order = random.Random(seed)
    # Interleaved within an arch (cases that are compared with each other), in a fresh random
    # order each round: a case never always follows a bigger one whose data evicted the caches.
    groups: dict[str, list[Case]] = {}
    for case in cases:
        groups.setdefault(case.arch, []).append(case)
    for g, group in enumerate(groups.values(), start=1):
        for case in group:
            for _ in range(warmup):
                step(case, *batches[case.batch], sync, record=False)
        for r in range(rounds):
            round_cases = list(group)
            order.shuffle(round_cases)
            for case in round_cases:
                step(case, *batches[case.batch], sync, record=True)
            if progress and (r % 10 == 9 or r == rounds - 1):
                sys.stderr.write(f"\rmeasuring: arch {g}/{len(groups)}, round {r + 1}/{rounds}\033[K")
    if progress:
        sys.stderr.write("\r\033[K")


def summarise(cases: list[Case]) -> list[dict[str, object]]:
    med = {(c.arch, c.scope, c.batch, c.method): {p: quartiles(c.samples[p])[1] for p in PHASES} for c in cases}
    rows = []
    for c in cases:
        m = med[(c.arch, c.scope, c.batch, c.method)]
        dense = med.get((c.arch, c.scope, c.batch, "dense")) or med.get((c.arch, "batch", c.batch, "dense"))
        # A method with dropout is compared with the nn.Linear MLP with dropout, when measured.
        ref = (
            "plain-dropout"
            if c.method in ("dropout", "plain-dropout") and (c.arch, "batch", c.batch, "plain-dropout") in med
            else "plain"
        )
        plain = med.get((c.arch, "batch", c.batch, ref))
        dropout = med.get((c.arch, "batch", c.batch, "dropout"))
        row: dict[str, object] = {
            "arch": c.arch,
            "method": c.method,
            "scope": c.scope,
            "batch": c.batch,
            "flop_ratio": flop_ratio(c),
        }
        for p in PHASES:
            lo, mid, hi = quartiles(c.samples[p])
            row[f"{p}_ms"], row[f"{p}_iqr_ms"] = mid * 1e3, (hi - lo) * 1e3
        row["select_share"] = m["select"] / m["backward"] if m["backward"] else 0.0
        row["bwd_vs_dense"] = m["backward"] / dense["backward"] if dense else None
        row["step_vs_dense"] = m["step"] / dense["step"] if dense else None
        row["step_vs_plain"] = m["step"] / plain["step"] if plain else None
        row["step_vs_dropout"] = m["step"] / dropout["step"] if dropout else None
        rows.append(row)
    return rows


def render(rows: list[dict[str, object]]) -> str:
    cols = [
        ("arch", "arch", "{}"),
        ("method", "method", "{}"),
        ("scope", "scope", "{}"),
        ("batch", "batch", "{}"),
        ("forward_ms", "fwd ms", "{:.3f}"),
        ("backward_ms", "bwd ms", "{:.3f}"),
        ("backward_iqr_ms", "±iqr", "{:.3f}"),
        ("select_ms", "sel ms", "{:.3f}"),
        ("optimizer_ms", "adam ms", "{:.3f}"),
        ("step_ms", "step ms", "{:.3f}"),
        ("select_share", "sel/bwd", "{:.2f}"),
        ("bwd_vs_dense", "bwd/dense", "{:.3f}"),
        ("flop_ratio", "flops", "{:.3f}"),
        ("step_vs_dense", "step/dense", "{:.3f}"),
        ("step_vs_plain", "step/plain", "{:.3f}"),
        ("step_vs_dropout", "step/dropout", "{:.3f}"),
    ]
    cells = [[h for _, h, _ in cols]] + [["—" if r[k] is None else f.format(r[k]) for k, _, f in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS))
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(DEFAULT_METHODS),
        help="plain, plain-dropout, dense, meprop (the peer: meProp's unified top-k), or conf/method names, "
        "optionally with parameters: partial:x_scope=sample",
    )
    p.add_argument(
        "--k",
        type=int,
        help="top-k's k for topk and meprop (default: conf/method/topk.yaml's; meProp's MNIST setting: 30)",
    )
    p.add_argument("--scopes", nargs="+", default=["batch"], choices=["batch", "sample"])
    p.add_argument("--batch", nargs="+", type=int, default=[50])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave the C library's malloc settings alone (training keeps freed memory: asym_sweep/allocator.py)",
    )
    p.add_argument(
        "--compile", action="store_true", help="wrap every model in torch.compile (default inductor backend)"
    )
    p.add_argument(
        "--bounds",
        action="store_true",
        help="also measure topk-floor and topk-products, lower bounds of top-k's backward (not training methods)",
    )
    p.add_argument(
        "--pixels",
        choices=["auto", "dataset", "synthetic"],
        default="auto",
        help="the input batch: Fashion-MNIST's first training images (dataset), 256-level uniform noise "
        "(synthetic), or the images where found (auto)",
    )
    p.add_argument("--out", default="outputs/bench", help="folder for the JSON result (a new file each run)")
    args = p.parse_args(argv)
    if args.bounds:
        args.methods += [m for m in BOUNDS if m not in args.methods]
    try:
        for arch in args.archs:
            parse_arch(arch)
        for m in args.methods:
            if m not in ("dense", "meprop", *PLAIN, *BOUNDS):
                method_spec(m, "batch").layer_rules(2)  # builds the rules: their parameter checks
        if args.k is not None and args.k < 1:
            raise ValueError("--k must be at least 1")
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda asked for, but CUDA is not available")
        for name in ("rounds", "warmup", "threads"):
            if getattr(args, name) < (0 if name == "warmup" else 1):
                raise ValueError(f"--{name.replace('_', '-')} must be at least {0 if name == 'warmup' else 1}")
        images, pixels = pixel_source(args.pixels, max(args.batch))
    except (ValueError, FileNotFoundError, DataError) as err:
        print(f"bench: error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    heap_kept = False if args.default_malloc else keep_freed_memory()
    cases = [
        make_case(a, m, s, b, device, args.seed, args.compile, args.k)
        for a in args.archs
        for b in args.batch
        for s in args.scopes
        for m in args.methods
        if not (s == "sample" and m in ("dense", "dropout", "meprop", *PLAIN, *BOUNDS))
    ]
    measure(cases, device, args.warmup, args.rounds, args.seed, progress=sys.stderr.isatty(), images=images)
    rows = summarise(cases)
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, {device}"
    if device.type == "cuda":
        machine += f" ({torch.cuda.get_device_name(device)})"
    machine += ", malloc keeps freed memory" if heap_kept else ", default malloc"
    machine += ", compiled row top-k" if native.helper() is not None else ", row top-k on torch.topk"
    # Our dropout's masks come from the helper only where its check passes (dropout.py); plain-dropout's are torch's.
    machine += ", dropout masks by the helper" if helper_masks_agree() else ", dropout masks by torch"
    print(f"# {machine}; {pixels}; medians of {args.rounds} interleaved steps after {args.warmup} warm-up")
    print(render(rows))
    result: dict[str, object] = {
        "machine": machine,
        "pixels": pixels,
        "host": platform.node(),
        "args": vars(args),
        "rows": rows,
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{platform.node()}.json"
    n = 1
    while path.exists():
        path = path.with_name(f"{path.stem}-{n}.json")
        n += 1
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
