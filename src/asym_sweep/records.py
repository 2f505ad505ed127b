"""What a run leaves on disk: ``result.json`` and ``checkpoint.pt``, written atomically.

Both are written to a temporary file in the same folder, flushed to disk, and
renamed over the old one, so an interruption (Ctrl-C, ``kill -9``, power loss)
leaves either the previous complete file or the new complete file, never a
partial one. Reading validates them; anything damaged is reported as absent so
the run is redone rather than trusted.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

RESULT_FILE = "result.json"
CHECKPOINT_FILE = "checkpoint.pt"
ERROR_FILE = "error.txt"
SCHEMA_VERSION = 1
STATUSES = ("completed", "failed")
REQUIRED_KEYS = {
    "schema_version": int,
    "status": str,
    "dataset": str,
    "arch": str,
    "method": str,
    "seed": int,
    "config": dict,
}
COMPLETED_KEYS = {
    "epochs": int,
    "history": list,
    "final": dict,
    "timing": dict,
    "flops": dict,
}


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


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(run_dir / CHECKPOINT_FILE, buffer.getvalue())


def load_checkpoint(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """Like `read_result`: ``(state, None)``, ``(None, reason)`` or ``(None, None)``."""
    path = run_dir / CHECKPOINT_FILE
    if not path.is_file():
        return None, None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many kinds for a damaged file
        return None, f"{path} is unreadable ({err.__class__.__name__})"
    needed = ("schema_version", "identity", "epoch", "model", "optimizer", "rng", "history", "timing")
    if not isinstance(state, dict) or any(k not in state for k in needed):
        return None, f"{path} is incomplete"
    if state["schema_version"] != SCHEMA_VERSION:
        return None, f"{path} has schema_version {state['schema_version']}"
    return state, None


def remove_checkpoint(run_dir: Path) -> None:
    (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
