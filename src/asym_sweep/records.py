"""What a run leaves on disk, and where: the one owner of the run-folder layout, the
``result.json`` format (its writer and its readers) and the checkpoint's keys; the run lock is
`runlock`'s.

Layout: ``<runs_root>/<dataset>/<arch>/<run tag>/seed<N>/`` (`run_subdir`), the run tag
being the method tag plus any setting off the reference setup (`run_tag`). Hydra's run
folder is this layout (``conf/config.yaml`` resolves ``${run_subdir:}`` to `run_subdir`).
In a folder: `RESULT_FILE`, `HYDRA_DIR`/`CONFIG_FILE`, `CHECKPOINT_FILE` while unfinished,
`ERROR_FILE` if it failed, `LOG_FILE`, and `runlock.LOCK_FILE`.

Files are written to a temporary file in the same folder, flushed to disk, and renamed over
the old one, so an interruption (Ctrl-C, ``kill -9``, power loss) leaves either the previous
complete file or the new complete file, never a partial one. Reading validates them;
anything damaged is reported as absent so the run is redone rather than trusted.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from asym_sweep.config import settings_tag
from asym_sweep.methods import MethodConfig
from asym_sweep.runlock import lock_holder

RESULT_FILE = "result.json"
CHECKPOINT_FILE = "checkpoint.pt"
ERROR_FILE = "error.txt"
LOG_FILE = "run.log"  # written by the job's logging (conf/hydra/job_logging/asym_sweep.yaml)
HYDRA_DIR = ".hydra"
CONFIG_FILE = "config.yaml"  # in HYDRA_DIR: the run's resolved config
OVERRIDES_FILE = "overrides.yaml"  # in HYDRA_DIR: the command-line overrides it was launched with
SCHEMA_VERSION = 1
STATUSES = ("completed", "failed")

# -- the layout ------------------------------------------------------------------------------


def run_tag(cfg: DictConfig | Mapping[str, Any]) -> str:
    """The folder name of a run's settings: its method tag plus `config.settings_tag`."""
    return MethodConfig.from_config(cfg["method"]).tag() + settings_tag(cfg)


def run_subdir(cfg: DictConfig | Mapping[str, Any]) -> str:
    """``<dataset>/<arch>/<run tag>/seed<seed>``: one folder per run identity, below the runs root."""
    return f"{cfg['dataset']['name']}/{cfg['arch']}/{run_tag(cfg)}/seed{cfg['seed']}"


def run_dir(cfg: DictConfig | Mapping[str, Any]) -> Path:
    """``<runs_root>/`` + `run_subdir`."""
    return Path(cfg["runs_root"]) / run_subdir(cfg)


def run_folders(runs_root: Path) -> list[Path]:
    """Every run folder under ``runs_root`` (``*/*/*/seed<N>``), sorted."""
    return sorted(p for p in Path(runs_root).glob("*/*/*/seed*") if p.is_dir() and p.name[4:].isdigit())


def folder_key(run_folder: Path) -> tuple[str, str, str, int]:
    """``(dataset, arch, run tag, seed)`` read off a run folder's path."""
    return run_folder.parents[2].name, run_folder.parents[1].name, run_folder.parent.name, int(run_folder.name[4:])


# What a run folder can hold, in the order a cell of several folders shows the first of.
STATES = ("completed", "running", "interrupted", "failed", "damaged", "empty")


def classify(run_folder: Path) -> tuple[str, dict[str, Any] | None, str | None]:
    """``(state, result, problem)`` of one run folder (`STATES`): a valid completed result;
    another launch holding the lock; a checkpoint nobody holds (resumable); a failed result;
    an unreadable result (``problem`` says why); nothing yet."""
    result, problem = read_result(run_folder)
    if result is not None and result["status"] == "completed":
        return "completed", result, None
    if lock_holder(run_folder) is not None:
        return "running", result, problem
    if problem:
        return "damaged", None, problem
    if result is not None:
        return result["status"], result, None
    if (run_folder / CHECKPOINT_FILE).is_file():
        return "interrupted", None, None
    return "empty", None, None
# -- the result.json format, version 1 -------------------------------------------------------
# One declaration that the writers (`train.run`, `failed_result`) fill and the readers (status,
# the report's collect) rely on. Every result has REQUIRED_KEYS; a completed one COMPLETED_KEYS
# too. Keys added since version 1 first shipped are in ADDED_KEYS: a reader must not need them.
REQUIRED_KEYS = {
    "schema_version": int,
    "status": str,
    "dataset": str,
    "arch": str,
    "method": str,
    "seed": int,
    "config": dict,  # the resolved config (also in HYDRA_DIR/CONFIG_FILE)
}
COMPLETED_KEYS = {
    "epochs": int,
    "history": list,  # one dict of EPOCH_KEYS per epoch
    "final": dict,  # FINAL_KEYS of the last epoch
    "timing": dict,  # TIMING_KEYS, seconds summed over the run
    "flops": dict,  # FLOP_KEYS, multiply-adds counted step by step
}
DESCRIPTIVE_KEYS = {  # written by every completed run, derived from the config
    "depth": int, "width": int, "method_tag": str, "rule": str, "method_params": dict, "scope": str,
    "dropout": float, "dropout_at": str, "sparsify_output": bool, "batch_size": int, "n_train": int, "n_val": int, "n_test": int,
    "steps": int, "resumed_at_epochs": list, "environment": dict, "started_at": str, "finished_at": str,
}
FINAL_KEYS = ("train_loss", "val_loss", "val_acc", "test_loss", "test_acc")
EPOCH_KEYS = ("epoch", *FINAL_KEYS, "train_s", "other_busy_cores", "cpu", "forward_s", "backward_s", "select_s", "optimizer_s")
TIMING_KEYS = ("backward_s", "select_s", "product_s", "forward_s", "optimizer_s", "eval_s", "train_s", "wall_s")
FLOP_KEYS = ("backward_madds", "dense_backward_madds", "ratio_to_dense", "forward_madds", "dense_forward_madds",
             "train_ratio_to_dense")
ENVIRONMENT_KEYS = ("torch", "python", "device", "device_name", "threads", "jobs", "cores", "thread_choice",
                    "loadavg_start", "loadavg_end", "other_busy_cores", "git_commit", "git_dirty", "package_version",
                    "malloc_keeps_freed_memory", "compiled_row_topk", "compiled_dropout_mask", "compiled_fused_backward", "host",
                    "cpu", "data_source")
# Since version 1 first shipped (older results lack them): the load and code provenance.
ADDED_KEYS = ("dropout_at", "history[].other_busy_cores", "history[].cpu", "environment.jobs", "environment.cores", "environment.thread_choice",
              "environment.loadavg_start", "environment.loadavg_end", "environment.other_busy_cores",
              "environment.git_commit", "environment.git_dirty", "environment.package_version", "environment.cpu",
              "environment.compiled_row_topk", "environment.compiled_dropout_mask", "environment.compiled_fused_backward")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; results are meant to be shared like any output.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False)
    write_bytes_atomic(path, (text + "\n").encode())


def _finite_numbers(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite_numbers(v) for v in value)
    return True


def validate_result(data: Any) -> str | None:
    """None when ``data`` is a well-formed result, else what is wrong with it."""
    if not isinstance(data, dict):
        return "not a JSON object"
    keys = dict(REQUIRED_KEYS)
    if data.get("status") == "completed":
        keys.update(COMPLETED_KEYS)
    for key, kind in keys.items():
        if not isinstance(data.get(key), kind):
            return f"missing or malformed {key!r}"
    if data["schema_version"] != SCHEMA_VERSION:
        return f"schema_version {data['schema_version']} (expected {SCHEMA_VERSION})"
    if data["status"] not in STATUSES:
        return f"unknown status {data['status']!r}"
    if data["status"] == "completed":
        if len(data["history"]) != data["epochs"]:
            return f"{len(data['history'])} epochs of history for {data['epochs']} epochs"
        for key in ("val_acc", "test_acc"):
            value = data["final"].get(key)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                return f"final.{key} is {value!r}"
        if not _finite_numbers(data["timing"]):
            return "non-finite timing"
    return None


def read_result(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(result, None)`` for a valid file, ``(None, reason)`` for a damaged one, ``(None, None)`` if absent."""
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"{path} is unreadable ({err.__class__.__name__})"
    problem = validate_result(data)
    if problem is not None:
        return None, f"{path} is invalid: {problem}"
    return data, None


def save_run_config(run_dir: Path, cfg: DictConfig, overrides: list[str]) -> None:
    """``.hydra/config.yaml`` (resolved) and ``.hydra/overrides.yaml`` of the run about to train."""
    folder = run_dir / HYDRA_DIR
    write_bytes_atomic(folder / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True).encode())
    write_bytes_atomic(folder / OVERRIDES_FILE, OmegaConf.to_yaml(OmegaConf.create(list(overrides))).encode())


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The config `save_run_config` wrote, as plain data; raises on a damaged file.

    Written resolved by OmegaConf's dumper, it reads back with libyaml's safe loader, some 20x
    faster than OmegaConf's own (a report reads every record's) and equal to it on every published
    record (tests/test_records.py). A file with interpolations, from runs saved before configs were
    written resolved, goes through OmegaConf, which resolves them.
    """
    path = run_dir / HYDRA_DIR / CONFIG_FILE
    text = path.read_text()
    if "${" not in text:
        data = yaml.load(text, Loader=_YAML_LOADER)
        if isinstance(data, dict):
            return data
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds no mapping of settings")
    return data


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the pure-Python one where libyaml is missing


def failed_result(cfg: DictConfig, err: BaseException) -> dict[str, Any]:
    """The ``result.json`` of a run that raised ``err`` while training."""
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "failed",
        "dataset": cfg.dataset.name,
        "arch": str(cfg.arch),
        "method": cfg.method.name,
        "seed": int(cfg.seed),
        "error": f"{type(err).__name__}: {err}",
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


# -- checkpoints ------------------------------------------------------------------------------
# A checkpoint is this header plus the run's parts, whose keys the training loop lists once
# (`train.Training.parts`) and hands to both functions below.
CHECKPOINT_HEADER = ("schema_version", "identity", "epoch")


def save_checkpoint(run_dir: Path, identity: dict[str, Any], epoch: int, parts: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save({"schema_version": SCHEMA_VERSION, "identity": identity, "epoch": epoch, **parts}, buffer)
    write_bytes_atomic(run_dir / CHECKPOINT_FILE, buffer.getvalue())


def load_checkpoint(run_dir: Path, parts: tuple[str, ...] = ()) -> tuple[dict[str, Any] | None, str | None]:
    """Like `read_result`: ``(state, None)``, ``(None, reason)`` or ``(None, None)``; a state
    lacking the header or one of ``parts`` is incomplete."""
    path = run_dir / CHECKPOINT_FILE
    if not path.is_file():
        return None, None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many kinds for a damaged file
        return None, f"{path} is unreadable ({err.__class__.__name__})"
    if not isinstance(state, dict) or any(k not in state for k in (*CHECKPOINT_HEADER, *parts)):
        return None, f"{path} is incomplete"
    if state["schema_version"] != SCHEMA_VERSION:
        return None, f"{path} has schema_version {state['schema_version']}"
    return state, None


def remove_checkpoint(run_dir: Path) -> None:
    (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
