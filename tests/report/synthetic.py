"""Synthetic run folders with known numbers, shaped exactly like the runner's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from asym_sweep import records
from asym_sweep.grid import load_grid
from asym_sweep.model import parse_arch


def run_config(
    root: Path,
    dataset: str,
    arch: str,
    method: str,
    rule: str,
    params: dict,
    seed: int,
    epochs: int,
    lr: float,
    batch: int = 50,
    scaling: str = "unit",
) -> dict[str, Any]:
    return {
        "dataset": {
            "name": dataset,
            "root": "data",
            "val_size": 5000,
            "train_limit": None,
            "epochs": epochs,
            "scaling": scaling,
        },
        "method": {
            "name": method,
            "rule": rule,
            "params": params,
            "scope": "batch",
            "dropout": 0.4 if method == "dropout" else 0.0,
            "sparsify_output": True,
        },
        "train": {
            "epochs": epochs,
            "batch_size": batch,
            "eval_batch_size": 10000,
            "optim": {"lr": lr, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
            "checkpoint": True,
        },
        "arch": arch,
        "seed": seed,
        "device": "cpu",
        "threads": 1,
        "progress": "off",
        "runs_root": str(root),
        "n_seeds": 5,
    }


def write_run(
    root: Path,
    *,
    tag: str = "topk-k40",
    method: str = "topk",
    rule: str = "topk",
    params: dict | None = None,
    dataset: str = "fashion_mnist",
    arch: str = "l1-64",
    seed: int = 0,
    val: float = 0.8,
    test: float = 0.79,
    backward: float = 2.0,
    select: float = 0.2,
    flop_ratio: float = 0.5,
    epochs: int | None = None,
    status: str = "completed",
    lr: float = 0.001,
    hydra_config: bool = True,
    threads: int = 1,
    jobs: int = 1,
    other_busy: float | None = 0.0,
    batch: int = 50,
    cpu: str | None = "test CPU, AVX2",
    scaling: str = "unit",
    started_at: str | None = None,
) -> Path:
    params = {"k": 40} if params is None else params
    epochs = epochs or {"fashion_mnist": 20, "mnist": 17}[dataset]  # the reference setup's: no settings tag
    run_dir = root / dataset / arch / tag / f"seed{seed}"
    config = run_config(root, dataset, arch, method, rule, params, seed, epochs, lr, batch, scaling)
    result: dict[str, Any] = {
        "schema_version": records.SCHEMA_VERSION,
        "status": status,
        "dataset": dataset,
        "arch": arch,
        "method": method,
        "seed": seed,
        "config": config,
    }
    if status == "failed":
        result["error"] = "RuntimeError: synthetic failure"
    else:
        a = parse_arch(arch)
        # Epoch e's accuracy climbs to the final value by 0.01 per epoch.
        history = [
            {
                "epoch": e,
                "train_loss": 1.0 / e,
                "val_loss": 0.5,
                "test_loss": 0.5,
                "val_acc": val - 0.01 * (epochs - e),
                "test_acc": test - 0.01 * (epochs - e),
                "train_s": 1.0,
                "forward_s": 0.2,
                "backward_s": backward / epochs,
                "select_s": select / epochs,
                "optimizer_s": 0.1,
            }
            for e in range(1, epochs + 1)
        ]
        result.update(
            {
                "depth": a.depth,
                "width": a.width,
                "method_tag": tag,
                "rule": rule,
                "method_params": params,
                "scope": "batch",
                "epochs": epochs,
                "batch_size": 50,
                "steps": 1100 * epochs,
                "history": history,
                "final": {"train_loss": 0.5, "val_loss": 0.5, "val_acc": val, "test_loss": 0.5, "test_acc": test},
                "timing": {
                    "backward_s": backward,
                    "select_s": select,
                    "product_s": backward - select,
                    "forward_s": 1.0,
                    "optimizer_s": 0.5,
                    "eval_s": 0.1,
                    "train_s": 3.0,
                    "wall_s": 3.5,
                },
                "flops": {
                    "backward_madds": 1000 * flop_ratio,
                    "dense_backward_madds": 1000,
                    "ratio_to_dense": flop_ratio,
                    "forward_madds": 1000,
                    "dense_forward_madds": 1000,
                    "train_ratio_to_dense": (1 + flop_ratio) / 2,
                },
                "environment": {
                    "torch": "test",
                    "python": "3",
                    "device": "cpu",
                    "device_name": "x",
                    "threads": threads,
                    "host": "h",
                    "malloc_keeps_freed_memory": True,
                    "data_source": "synthetic",
                    "jobs": jobs,
                    "cores": 2,
                    "other_busy_cores": other_busy,
                    **({"cpu": cpu} if cpu else {}),
                },
            }
        )
    if started_at is not None:
        result["started_at"] = started_at
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / records.RESULT_FILE).write_text(json.dumps(result))
    if hydra_config:
        (run_dir / ".hydra").mkdir(exist_ok=True)
        OmegaConf.save(OmegaConf.create(config), run_dir / ".hydra" / "config.yaml")
    return run_dir


# The thesis methods as conf/method defines them now: grid tag -> (method, rule, params, the
# settings its method file fixes).
_GRID = load_grid()
THESIS_METHODS = {
    _GRID.tags[name]: (name, spec.rule, dict(spec.params), _GRID.settings.get(name, {}))
    for name, spec in _GRID.specs.items()
}
PARTIAL = _GRID.tags["partial"]  # partial connectivity's grid tag (its default reading)
DROPOUT = _GRID.baseline_tag  # the baseline's grid tag (dropout-p0.4)


def write_thesis_run(root: Path, tag: str, **kw: Any) -> Path:
    method, rule, params, settings = THESIS_METHODS[tag]
    kw.setdefault("scaling", settings.get("dataset.scaling", "unit"))
    return write_run(root, tag=tag, method=method, rule=rule, params=params, **kw)
