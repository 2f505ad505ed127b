"""What a run leaves on disk, and where: the one owner of the run-folder layout, the
``result.json`` format (`Result`, which its writers build and its readers get) and the
checkpoint's keys; the run lock is `runlock`'s.

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

import dataclasses
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

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


def classify(run_folder: Path) -> tuple[str, Result | None, str | None]:
    """``(state, result, problem)`` of one run folder (`STATES`): a valid completed result;
    another launch holding the lock; a checkpoint nobody holds (resumable); a failed result;
    an unreadable result (``problem`` says why); nothing yet."""
    result, problem = read_result(run_folder)
    if result is not None and result.completed:
        return "completed", result, None
    if lock_holder(run_folder) is not None:
        return "running", result, problem
    if problem:
        return "damaged", None, problem
    if result is not None:
        return result.status, result, None
    if (run_folder / CHECKPOINT_FILE).is_file():
        return "interrupted", None, None
    return "empty", None, None


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


def save_run_config(run_dir: Path, cfg: DictConfig, overrides: list[str]) -> None:
    """``.hydra/config.yaml`` (resolved) and ``.hydra/overrides.yaml`` of the run about to train."""
    folder = run_dir / HYDRA_DIR
    write_bytes_atomic(folder / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True).encode())
    write_bytes_atomic(folder / OVERRIDES_FILE, OmegaConf.to_yaml(OmegaConf.create(list(overrides))).encode())


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The config `save_run_config` wrote, as plain data; raises on a damaged file.

    Written resolved by OmegaConf's dumper, it reads back with libyaml's safe loader, much
    faster than OmegaConf's own (a report reads every record's; docs/performance.md) and equal to
    it on every published record (tests/test_records.py). A file with interpolations, from runs
    saved before configs were written resolved, goes through OmegaConf, which resolves them.
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


# -- the result.json format, version 1 -------------------------------------------------------
# One typed record, `Result`, is the format: the writers (`train.result_record`, `failed_result`)
# build one and save `Result.to_json`; the readers (status, projection, publish, the report's
# collect) get one from `read_result`, which `Result.from_json` validates. The file is flat JSON,
# the parts below nested in it under their field names. A field with a default of None is either
# one a failed run lacks or one added since version 1 first shipped (`ADDED_KEYS`): old records
# read with None there. Adding a metric is adding a field to one of these classes.


class RecordError(ValueError):
    """A ``result.json`` that is not a well-formed `Result` (the message says what is wrong)."""


@dataclass(frozen=True)
class Timing:
    """Seconds summed over the run (`timing.Timers`; eval and wall are outside the step)."""

    backward_s: float
    select_s: float  # the thesis' "max-heap" time (9.3): choosing what the rule keeps
    product_s: float  # the rest of backprop ("JVP"): backward_s - select_s
    forward_s: float
    optimizer_s: float
    eval_s: float
    train_s: float
    wall_s: float


@dataclass(frozen=True)
class Flops:
    """Multiply-adds counted step by step from what each rule kept (`procedure.Madds`)."""

    backward_madds: float
    dense_backward_madds: float
    ratio_to_dense: float
    forward_madds: float
    dense_forward_madds: float
    train_ratio_to_dense: float


@dataclass(frozen=True)
class Environment:
    """Where and how the run's times were taken, and from which code."""

    torch: str
    python: str
    device: str
    device_name: str
    threads: int
    malloc_keeps_freed_memory: bool
    host: str
    data_source: str
    jobs: int | None = None
    cores: int | None = None
    thread_choice: dict[str, Any] | None = None
    loadavg_start: list[float] | None = None
    loadavg_end: list[float] | None = None
    other_busy_cores: float | None = None  # over the last segment of the run (resources.LoadMeter)
    git_commit: str | None = None
    git_dirty: bool | None = None
    package_version: str | None = None
    cpu: str | None = None  # the CPUs the epochs were timed on (a VM keeps its host name when it moves)
    # Row-wise top-k, dropout's masks and the fused backward on the compiled helper or on torch:
    # the same numbers, not the same times (docs/performance.md).
    compiled_row_topk: bool | None = None
    compiled_dropout_mask: bool | None = None
    compiled_fused_backward: bool | None = None


# One epoch's entry in ``history`` (`train.train_and_evaluate`), a mapping because a rule may add
# its state (e.g. its k); these it always has. FINAL_KEYS are the last epoch's, copied to ``final``.
FINAL_KEYS = ("train_loss", "val_loss", "val_acc", "test_loss", "test_acc")
EPOCH_KEYS = ("epoch", *FINAL_KEYS, "train_s", "forward_s", "backward_s", "select_s", "optimizer_s")
EPOCH_ADDED_KEYS = ("other_busy_cores", "cpu")  # since version 1 first shipped


@dataclass(frozen=True)
class Result:
    """One run's ``result.json``: who it is, then (completed runs) what it measured."""

    status: str  # one of STATUSES
    dataset: str
    arch: str
    method: str
    seed: int
    config: dict[str, Any]  # the resolved config (also in HYDRA_DIR/CONFIG_FILE)
    error: str | None = None  # a failed run's exception
    # Derived from the config, written by every completed run.
    depth: int | None = None
    width: int | None = None
    method_tag: str | None = None
    rule: str | None = None
    method_params: dict[str, Any] | None = None
    scope: str | None = None
    dropout: float | None = None
    dropout_at: str | None = None  # since version 1 first shipped
    sparsify_output: bool | None = None
    batch_size: int | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    steps: int | None = None
    # What it measured.
    epochs: int | None = None
    final: dict[str, float] | None = None  # FINAL_KEYS of the last epoch
    history: list[dict[str, Any]] | None = None  # one entry (EPOCH_KEYS) per epoch
    timing: Timing | None = None
    flops: Flops | None = None
    environment: Environment | None = None
    resumed_at_epochs: list[int] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def to_json(self) -> dict[str, Any]:
        """The file's content: every field that has a value (None is not written: it reads back as
        None), the parts as nested objects."""
        data: dict[str, Any] = {"schema_version": self.schema_version}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                value = {k: v for k, v in dataclasses.asdict(value).items() if v is not None}
            if f.name != "schema_version" and value is not None:
                data[f.name] = value
        return data

    @classmethod
    def from_json(cls, data: Any) -> Result:
        """The record in ``data`` (parsed JSON); raises `RecordError` saying what is wrong."""
        if not isinstance(data, dict):
            raise RecordError("not a JSON object")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RecordError(f"schema_version {version!r} (expected {SCHEMA_VERSION})")
        if data.get("status") not in STATUSES:
            raise RecordError(f"unknown status {data.get('status')!r}")
        completed = data["status"] == "completed"
        result = _build(cls, data, "", lambda name: completed and name in COMPLETED_KEYS)
        if completed:
            _check_completed(result)
        return result


PARTS = {"timing": Timing, "flops": Flops, "environment": Environment}
# What a completed run must have beyond what every run has (old completed records have them all).
COMPLETED_KEYS = ("epochs", "final", "history", "timing", "flops", "environment")
# Added since version 1 first shipped: a reader must not need them (they read as None).
ADDED_KEYS = (
    "dropout_at",
    *(f"history[].{key}" for key in EPOCH_ADDED_KEYS),
    *(f"environment.{f.name}" for f in dataclasses.fields(Environment) if f.default is None),
)
TIMING_KEYS = tuple(f.name for f in dataclasses.fields(Timing))
FLOP_KEYS = tuple(f.name for f in dataclasses.fields(Flops))

# JSON's kinds of each annotation; a field's `None` default makes it optional (absent reads None).
_KINDS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "dict": (dict,),
    "list": (list,),
}


def _kinds(annotation: str) -> tuple[type, ...]:
    head = annotation.split("|")[0].strip().split("[")[0]
    return _KINDS[head]


def _build(cls: type, data: dict[str, Any], where: str, required: Callable[[str], bool] = lambda _: False) -> Any:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = data.get(f.name)
        if value is None:
            if f.default is dataclasses.MISSING or required(f.name):
                raise RecordError(f"missing {where}{f.name!r}")
            continue
        part = PARTS.get(f.name) if cls is Result else None
        if part is not None:
            if not isinstance(value, dict):
                raise RecordError(f"malformed {where}{f.name!r}")
            value = _build(part, value, f"{f.name}.")
        elif not isinstance(value, _kinds(str(f.type))) or (isinstance(value, bool) and "bool" not in str(f.type)):
            raise RecordError(f"malformed {where}{f.name!r}")
        values[f.name] = value
    return cls(**values)


def _check_completed(result: Result) -> None:
    if len(result.history) != result.epochs:
        raise RecordError(f"{len(result.history)} epochs of history for {result.epochs} epochs")
    for entry in result.history:
        missing = [key for key in EPOCH_KEYS if key not in entry] if isinstance(entry, dict) else ["all"]
        if missing:
            raise RecordError(f"history entry without {', '.join(missing)}")
    for key in ("val_acc", "test_acc"):
        value = result.final.get(key)
        if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise RecordError(f"final.{key} is {value!r}")
    if not all(math.isfinite(v) for v in dataclasses.astuple(result.timing)):
        raise RecordError("non-finite timing")


def read_result(run_dir: Path) -> tuple[Result | None, str | None]:
    """``(result, None)`` for a valid file, ``(None, reason)`` for a damaged one, ``(None, None)`` if absent."""
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"{path} is unreadable ({err.__class__.__name__})"
    try:
        return Result.from_json(data), None
    except RecordError as err:
        return None, f"{path} is invalid: {err}"


def write_result(run_dir: Path, result: Result) -> None:
    write_json_atomic(run_dir / RESULT_FILE, result.to_json())


def failed_result(cfg: DictConfig, err: BaseException) -> Result:
    """The record of a run that raised ``err`` while training."""
    return Result(
        status="failed",
        dataset=cfg.dataset.name,
        arch=str(cfg.arch),
        method=cfg.method.name,
        seed=int(cfg.seed),
        error=f"{type(err).__name__}: {err}",
        config=OmegaConf.to_container(cfg, resolve=True),
    )


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
