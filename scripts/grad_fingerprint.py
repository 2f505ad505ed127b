"""Fingerprints (SHA-256 of the bytes) of every registered rule's gradients, both scopes.

    python scripts/grad_fingerprint.py                    # print this machine's JSON
    python scripts/grad_fingerprint.py --out tests/data/grad_fingerprints.json   # add or replace its entry

Two paths per rule and scope, at the rule's ``conf/method`` parameters:

* ``functional``: `sparse_linear` on fixed float32 inputs (the scatter path), gradients of
  ``x``, ``W`` and ``b``;
* ``training``: three Adam steps of an l2-64 MLP through the rule's training procedure
  (the `GradSink` path; VR-PGE's two sub-networks), then the weights.

Equal fingerprints mean bit-identical gradients. They hold for one torch build on one kind
of CPU (floating-point kernels differ between CPU families), so the file holds one entry per
platform (`platform_key`), ``--out`` adds or replaces this machine's and keeps the others, and
the test that compares against the file runs where one of its platforms is this machine's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from asym_sweep import resources
from asym_sweep.config import CONF_DIR
from asym_sweep.grid import method_node

CONF_METHODS = CONF_DIR / "method"


def digest(t: torch.Tensor | None) -> str | None:
    return None if t is None else hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest()[:16]


def cpu_vendor() -> str:
    """``GenuineIntel``, ``AuthenticAMD``...: two CPUs of one vector capability (AVX-512 on an
    AMD EPYC and on an Intel Xeon) still round some kernels differently, so it is part of the key."""
    return resources.cpuinfo_field("vendor_id") or platform.processor() or "unknown"


def platform_key() -> dict[str, str]:
    return {
        "torch": torch.__version__,
        "cpu": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
        "vendor": cpu_vendor(),
    }


# Methods as they were configured when first fingerprinted, where conf/method has moved on
# since: partial connectivity's inputs per mini-batch (its default until the readings panel
# chose per-example inputs, docs/methods.md), so that reading stays checked bit for bit.
EARLIER = {"partial_xbatch": ("partial", {"x_scope": None})}


def method_configs() -> dict[str, dict]:
    configs = {
        p.stem: OmegaConf.to_container(method_node(p.stem), resolve=True) for p in sorted(CONF_METHODS.glob("*.yaml"))
    }
    for alias, (base, changes) in EARLIER.items():
        configs[alias] = {**configs[base], "params": {**configs[base]["params"], **changes}}
    return configs


def functional(rule_name: str, params: dict, scope: str) -> dict[str, str | None]:
    from asym_sweep.sparse import sparse_linear

    gen = torch.Generator().manual_seed(7)
    x = torch.rand(16, 300, generator=gen).requires_grad_(True)
    w = torch.randn(120, 300, generator=gen).mul_(0.05).requires_grad_(True)
    b = torch.randn(120, generator=gen).requires_grad_(True)
    g = torch.randn(16, 120, generator=gen)
    torch.manual_seed(11)  # random selection draws from the global generator
    y = sparse_linear(x, w, b, method=rule_name, scope=scope, **params)
    y.backward(g)
    return {"y": digest(y), "x": digest(x.grad), "w": digest(w.grad), "b": digest(b.grad)}


def training(method: dict, scope: str) -> dict[str, str | None]:
    from asym_sweep.engine.procedure import make_procedure
    from asym_sweep.methods import MethodConfig
    from asym_sweep.model import build_mlp, parse_arch
    from asym_sweep.timing import Timers
    from asym_sweep.train import make_adam

    spec = MethodConfig.from_config({**method, "scope": scope})
    arch = parse_arch("l2-64")
    torch.manual_seed(5)
    model = build_mlp(arch, spec.layer_rules(arch.depth + 1), spec.dropout, seed=3, nonnegative_pixels=True)
    procedure = make_procedure(model, make_adam(model.parameters()), Timers(None), 3)
    gen = torch.Generator().manual_seed(9)
    for _ in range(3):
        procedure.step(torch.rand(50, 784, generator=gen), torch.randint(0, 10, (50,), generator=gen))
    return {f"{name}": digest(p) for name, p in model.named_parameters()}


def fingerprints() -> dict:
    torch.set_num_threads(1)
    out: dict = {"platform": platform_key(), "rules": {}}
    for name, cfg in method_configs().items():
        for scope in ("batch", "sample"):
            try:
                entry = {
                    "functional": functional(cfg["rule"], dict(cfg.get("params") or {}), scope),
                    "training": training(cfg, scope),
                }
            except ValueError as err:  # a parameter the scope does not allow (threshold reuse is batch-only)
                entry = {"refused": str(err)}
            out["rules"][f"{name}/{scope}"] = entry
    return out


def read_platforms(path: Path) -> list[dict]:
    """The entries (``platform``, ``rules``) of a fingerprint file, one per platform."""
    return json.loads(path.read_text())["platforms"]


def entry_for(entries: list[dict], key: dict[str, str]) -> dict | None:
    """The entry made on platform ``key``, or None."""
    return next((e for e in entries if e["platform"] == key), None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--out", help="add this machine's entry to this file (replacing an older one of it) instead of printing it"
    )
    args = p.parse_args(argv)
    entry = fingerprints()
    if not args.out:
        sys.stdout.write(json.dumps(entry, indent=1, sort_keys=True) + "\n")
        return 0
    out = Path(args.out)
    others = [e for e in read_platforms(out) if e["platform"] != entry["platform"]] if out.exists() else []
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"platforms": others + [entry]}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}: {len(others) + 1} platforms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
