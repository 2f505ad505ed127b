"""Read every run folder into tidy pandas tables (mbrl-lib style: glob results, read each saved config).

A run folder is ``<runs>/<dataset>/<arch>/<method tag>/seed<N>/``. Its
``result.json`` (validated by `records.read_result`) gives the numbers; its
``.hydra/config.yaml`` is the config the run was launched with, preferred over
the copy inside ``result.json`` when both exist. Folders without a valid
result are not dropped silently: they are listed in `Collection.problems`
(damaged results, unreadable configs) or counted as in progress.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from asym_sweep import records
from asym_sweep.config import identity
from asym_sweep.model import parse_arch
from asym_sweep.resources import under_load

SETTINGS_IGNORED = ("seed",)


@dataclass
class Collection:
    runs: pd.DataFrame  # one row per run folder with a result (completed or failed)
    epochs: pd.DataFrame  # one row per (completed run, epoch)
    in_progress: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def saved_config(run_dir: Path, result: records.Result) -> tuple[dict[str, Any], str | None]:
    """The launch config from ``.hydra/config.yaml``, else the one in ``result.json``."""
    path = run_dir / records.HYDRA_DIR / records.CONFIG_FILE
    if not path.is_file():
        return result.config, None
    try:
        data = records.read_run_config(run_dir)
    except Exception as err:  # yaml and omegaconf raise several kinds on a damaged file
        return result.config, f"{path} is unreadable ({err.__class__.__name__}); used the config in result.json"
    return data, None


def settings_key(config: dict[str, Any]) -> str:
    """Everything that defines a run except its seed (and where/how it ran): runs of one group should share it."""
    ident = identity(config)
    for key in SETTINGS_IGNORED:
        ident.pop(key, None)
    return json.dumps(ident, sort_keys=True, default=str)


def _run_tag(config: dict[str, Any], run_dir: Path) -> str:
    try:
        return records.run_tag(config)
    except (KeyError, TypeError):  # a config too old or damaged to derive it: the folder's name
        return run_dir.parent.name


def _depth_width(arch: str) -> tuple[int | None, int | None]:
    try:
        parsed = parse_arch(arch)
    except ValueError:
        return None, None
    return parsed.depth, parsed.width


# The environment's columns in the run table. Timing's and Flops' fields all become columns: a
# field added to `records.Timing` or `records.Flops` is a column with no change here.
ENVIRONMENT_COLUMNS = (
    "device",
    "host",
    "cpu",
    "threads",
    "jobs",
    "cores",
    "other_busy_cores",
    "git_commit",
    "git_dirty",
    "torch",
)


def _columns(part: Any, kind: type) -> dict[str, Any]:
    return {f.name: None if part is None else getattr(part, f.name) for f in dataclasses.fields(kind)}


def run_row(run_dir: Path, result: records.Result, config: dict[str, Any]) -> dict[str, Any]:
    # Failed runs record less than completed ones; what they lack is derived from the folder and config.
    depth, width = _depth_width(result.arch)
    method = config.get("method", {})
    env = _columns(result.environment, records.Environment)
    flops = _columns(result.flops, records.Flops)
    params = method.get("params", {}) if result.method_params is None else result.method_params
    return {
        "run_dir": str(run_dir),
        "status": result.status,
        "dataset": result.dataset,
        "arch": result.arch,
        "depth": depth if result.depth is None else result.depth,
        "width": width if result.width is None else result.width,
        "method": result.method,
        # The run tag: the method tag plus any setting off the reference setup (+e2, +b10), so a run
        # of other settings is its own row and is never compared with the thesis as if it were one.
        "method_tag": _run_tag(config, run_dir),
        "rule": result.rule or method.get("rule"),
        "method_params": json.dumps(params, sort_keys=True),
        "scope": result.scope or method.get("scope"),
        "seed": result.seed,
        "epochs": result.epochs,
        "steps": result.steps,
        "batch_size": result.batch_size,
        "lr": config.get("train", {}).get("optim", {}).get("lr"),
        **{key: (result.final or {}).get(key) for key in records.FINAL_KEYS},
        **epoch_picks(result.history or []),
        **_columns(result.timing, records.Timing),
        **flops,
        "flop_ratio": flops["ratio_to_dense"],
        **{key: env[key] for key in ENVIRONMENT_COLUMNS},
        "under_load": under_load(env["other_busy_cores"], env["threads"], env["cores"]),
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "error": result.error,
        "settings": settings_key(config),
    }


def epoch_picks(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The accuracies other readings of "the reported epoch" take (`aggregate.EPOCH_MODES`): at the
    epoch of best validation accuracy (early stopping; ties: the earliest), and each one's best."""
    if not history:
        return {
            "best_val_epoch": None,
            "bestval_val_acc": None,
            "bestval_test_acc": None,
            "max_val_acc": None,
            "max_test_acc": None,
            "test_loss_rise": None,
        }
    best = max(history, key=lambda h: (h["val_acc"], -h["epoch"]))
    losses = [h["test_loss"] for h in history if h.get("test_loss") is not None]
    return {
        "best_val_epoch": best["epoch"],
        "bestval_val_acc": best["val_acc"],
        "bestval_test_acc": best["test_acc"],
        "max_val_acc": max(h["val_acc"] for h in history),
        "max_test_acc": max(h["test_acc"] for h in history),
        # How far the test loss rose after its lowest epoch: the overfitting the abstract speaks of.
        "test_loss_rise": (losses[-1] - min(losses)) if losses else None,
    }


def epoch_rows(row: dict[str, Any], history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = {k: row[k] for k in ("dataset", "arch", "method_tag", "seed", "run_dir")}
    return [{**keys, **{k: h.get(k) for k in records.EPOCH_KEYS}} for h in history]


PUBLISHED, YOURS = "published", "yours"


def collect(runs_root: Path | None = None, published: list[Path] | tuple[Path, ...] = ()) -> Collection:
    """Every run of the published roots (``results/``) and of ``runs_root`` (the user's own), each
    row marked with its ``source``. A user's group that repeats a published one (same dataset,
    arch and run tag) is renamed ``<tag> (yours)``: the two are never pooled into one cell."""
    parts = [_collect_one(root, PUBLISHED) for root in published if root.is_dir()]
    if runs_root is not None and runs_root.is_dir():
        parts.append(_collect_one(runs_root, YOURS))
    runs = (
        pd.concat([c.runs for c in parts if not c.runs.empty], ignore_index=True)
        if any(not c.runs.empty for c in parts)
        else pd.DataFrame()
    )
    epochs = (
        pd.concat([c.epochs for c in parts if not c.epochs.empty], ignore_index=True)
        if any(not c.epochs.empty for c in parts)
        else pd.DataFrame()
    )
    if not runs.empty:
        mine = runs["source"] == YOURS
        shared = set(map(tuple, runs.loc[~mine, ["dataset", "arch", "method_tag"]].to_numpy()))
        clash = mine & runs[["dataset", "arch", "method_tag"]].apply(tuple, axis=1).isin(shared)
        renamed = {d: t + " (yours)" for d, t in zip(runs.loc[clash, "run_dir"], runs.loc[clash, "method_tag"])}
        runs.loc[clash, "method_tag"] = runs.loc[clash, "method_tag"] + " (yours)"
        if renamed and not epochs.empty:
            epochs["method_tag"] = [renamed.get(d, t) for d, t in zip(epochs["run_dir"], epochs["method_tag"])]
    return Collection(
        runs=runs,
        epochs=epochs,
        in_progress=[x for c in parts for x in c.in_progress],
        problems=[x for c in parts for x in c.problems],
    )


def _collect_one(runs_root: Path, source: str) -> Collection:
    rows, epochs, in_progress, problems = [], [], [], []
    for run_dir in records.run_folders(runs_root):
        state, result, problem = records.classify(run_dir)
        if problem:
            problems.append(problem)
        if state in ("running", "interrupted"):
            in_progress.append(str(run_dir))
        if result is None or state == "running":
            continue
        config, problem = saved_config(run_dir, result)
        if problem:
            problems.append(problem)
        row = {**run_row(run_dir, result, config), "source": source}
        rows.append(row)
        if row["status"] == "completed":
            epochs += epoch_rows(row, result.history)
    return Collection(runs=pd.DataFrame(rows), epochs=pd.DataFrame(epochs), in_progress=in_progress, problems=problems)
