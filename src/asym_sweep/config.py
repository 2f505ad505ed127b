"""Structured config schemas (registered with Hydra by `launch.register_configs`) and run identity.

The YAML files under ``conf/`` fill these dataclasses; a key that is not here,
or a value of the wrong type, is rejected by Hydra before anything trains.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from omegaconf import II, MISSING, DictConfig, OmegaConf

from asym_sweep import paths
from asym_sweep.data import SCALINGS
from asym_sweep.methods import MethodConfig
from asym_sweep.model import DROPOUT_AT, parse_arch

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


@dataclass
class DatasetConfig:
    name: str = MISSING  # "fashion_mnist" or "mnist"
    # Searched first; then $ASYM_SWEEP_DATA, then Debian's dataset folder.
    root: Optional[str] = "data"
    # Thesis 9.1.2: the first 5,000 training images are the validation set.
    val_size: int = 5000
    # Use only the first N of the remaining training images (None: all of them).
    train_limit: Optional[int] = None
    # Pixels divided by 255 into [0, 1] ("unit", the thesis states no other scaling), or then
    # standardised by the training split's mean and standard deviation ("standard").
    scaling: str = "unit"
    epochs: int = MISSING  # the thesis' epoch count for this dataset


@dataclass
class OptimConfig:
    # Adam with the thesis' hyper-parameters (9.1.2).
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8


@dataclass
class TrainConfig:
    epochs: int = II("dataset.epochs")
    # Not stated by the thesis; meProp's PyTorch code uses 50 (README, "Choices").
    batch_size: int = 50
    eval_batch_size: int = 10000
    optim: OptimConfig = field(default_factory=OptimConfig)
    checkpoint: bool = True  # save a resumable snapshot after every epoch


@dataclass
class RunConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    arch: str = "l3-256"
    seed: int = 0
    device: str = "auto"  # "auto" picks CUDA when present
    threads: int = 0  # torch threads; 0 = cores / parallel jobs
    progress: str = "auto"  # "auto" (only on a terminal), "on", "off"
    runs_root: str = paths.RUNS
    # Number of seeds a preset sweeps (seed=range(0, n_seeds)): the thesis grid's (grid.GRID_SEEDS)
    # unless the preset names another (the panel's, ${grid:panel_seeds}).
    n_seeds: int = II("grid:seeds")
    # A multirun's projected time (asym_sweep.projection): "off", "print" it before the jobs
    # start, or "only" print it and train nothing.
    projection: str = "off"


# Settings that change how a run executes but not what it computes; a finished
# run is reused whatever their values. Threads and device change the last digits of
# floating-point sums (e.g. val acc 0.8486 with 2 threads, 0.8490 with 1 on l1-64 top-k), but
# they are recorded in result.json, not made part of the identity: otherwise the same cell run
# on a 2-core laptop and a 16-core node would never count as one.
NON_IDENTITY_KEYS = (
    "device",
    "threads",
    "progress",
    "runs_root",
    "n_seeds",
    "projection",
    "dataset.root",
    "train.checkpoint",
)

# Settings outside the method that change a run's numbers, and their forms in the folder name.
# A run whose values all equal the reference setup (`reference_settings`) keeps the plain
# method tag, as every run did before these were encoded; any other value is appended to it:
# ``topk-k40+e2+b10`` is top-k with 2 epochs and batch 10. The method's own settings are in
# the method tag (`methods.MethodConfig.tag`).
SETTING_TAGS = {
    "dataset.scaling": "",  # +standard
    "dataset.val_size": "val",
    "dataset.train_limit": "n",
    "train.epochs": "e",
    "train.batch_size": "b",
    "train.eval_batch_size": "eb",
    "train.optim.lr": "lr",
    "train.optim.beta1": "beta1",
    "train.optim.beta2": "beta2",
    "train.optim.eps": "eps",
}
# What names a run folder apart from the settings above: the path's own components.
PATH_KEYS = ("dataset.name", "arch", "seed")


@functools.lru_cache(maxsize=1)
def schema_settings() -> dict[str, Any]:
    """The schema's default of every `SETTING_TAGS` key but the epochs, which each dataset's
    file sets (the schema is code: computed once)."""
    schema = OmegaConf.structured(RunConfig)
    return {key: OmegaConf.select(schema, key, throw_on_missing=False) for key in SETTING_TAGS if key != "train.epochs"}


def reference_settings(dataset: str) -> dict[str, Any]:
    """The value of every `SETTING_TAGS` key in the reference setup: the schema's defaults, and
    the epochs of ``conf/dataset/<dataset>.yaml`` (the thesis': 20 for Fashion-MNIST, 17 for MNIST)."""
    return dict(schema_settings(), **{"train.epochs": _dataset_epochs(dataset)})


@functools.lru_cache(maxsize=None)
def _dataset_epochs(dataset: str) -> Any:
    # Read once per process: every record's folder name needs it (a report reads hundreds).
    path = CONF_DIR / "dataset" / f"{dataset}.yaml"
    return OmegaConf.load(path).get("epochs") if path.is_file() else None


def _tag_value(value: Any) -> str:
    # No "+" inside a value ("1e+30" -> "1e30"): "+" separates the settings in a tag.
    return f"{value:g}".replace("e+", "e") if isinstance(value, float) else str(value)


# Keys added to the schema after runs were first recorded: a saved config without one was run
# with the schema's default, and is completed with it before it is compared or named.
ADDED_SETTINGS = ("dataset.scaling", "method.dropout_at")


def with_defaults(cfg: DictConfig | dict) -> dict:
    """A plain copy of ``cfg`` (resolved; Hydra's own node left out) holding every key of `ADDED_SETTINGS`."""
    # Not the hydra node: its run folder resolves through this very function (records.run_subdir).
    own = {key: value for key, value in cfg.items() if key != "hydra"} if isinstance(cfg, dict) else None
    if own is not None and not _interpolates(own):
        data = _plain_copy(own)
    else:  # a DictConfig, or a dict with interpolations to resolve
        node = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
        data = {key: _plain(node, key) for key in node if key != "hydra"}
    for key in ADDED_SETTINGS:
        head, _, tail = key.partition(".")
        node = data.setdefault(head, {})
        if isinstance(node, dict) and tail not in node:
            node[tail] = _added_defaults()[key]
    return data


def _plain(node: DictConfig, key: str) -> Any:
    value = node[key]
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


def _plain_copy(value: Any) -> Any:
    """A copy of a plain config (a saved ``result.json``'s) as OmegaConf's round trip gives it
    (tuples become lists). A report reads hundreds of records; the round trip cost some 10 ms each."""
    if isinstance(value, dict):
        return {key: _plain_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_copy(item) for item in value]
    return value


def _interpolates(value: Any) -> bool:
    """Whether a plain config holds an interpolation (a string with ``${``), which OmegaConf must resolve."""
    if isinstance(value, dict):
        return any(_interpolates(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_interpolates(item) for item in value)
    return isinstance(value, str) and "${" in value


@functools.lru_cache(maxsize=1)
def _added_defaults() -> dict[str, Any]:
    """The schema's default of every `ADDED_SETTINGS` key (the schema is code: computed once)."""
    schema = OmegaConf.structured(RunConfig)
    return {key: OmegaConf.select(schema, key) for key in ADDED_SETTINGS}


def settings_suffix(values: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    """``+e2+b10``: the `SETTING_TAGS` keys of ``values`` that differ from ``reference``, in
    `SETTING_TAGS` order ('' if none). The one owner of that form: run folders (`settings_tag`)
    and the grid's method tags (`grid.ThesisGrid.tags`, a method file fixing its input scaling)."""
    return "".join(
        f"+{short}{_tag_value(values[key])}"
        for key, short in SETTING_TAGS.items()
        if key in values and values[key] != reference[key]
    )


def settings_tag(cfg: DictConfig | dict) -> str:
    """``+e2+b10``: the settings of ``cfg`` that differ from the reference setup ('' if none)."""
    data = with_defaults(cfg)
    ref = reference_settings(str(_select(data, "dataset.name")))
    return settings_suffix({key: _select(data, key) for key in SETTING_TAGS}, ref)


def _select(data: Mapping[str, Any], key: str) -> Any:
    """``OmegaConf.select`` on a plain config: the dotted key's value, None where it is absent or
    missing (``???``)."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return None if node == MISSING else node


def identity(cfg: DictConfig | dict) -> dict:
    """The resolved config (completed by `with_defaults`) minus the settings in `NON_IDENTITY_KEYS`."""
    data = with_defaults(cfg)
    for key in NON_IDENTITY_KEYS:
        head, _, tail = key.partition(".")
        if tail:
            data.get(head, {}).pop(tail, None)
        else:
            data.pop(head, None)
    return data


def identity_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Human-readable ``key: old -> new`` lines where two identities differ."""
    lines = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            lines += identity_differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            lines.append(f"{prefix}{key}: {va!r} -> {vb!r}")
    return lines


class ConfigError(ValueError):
    """A config that composes but cannot be run."""


# Nodes whose keys are free-form (checked by the rule itself, `methods.MethodConfig.make_rule`).
FREE_FORM = ("method.params",)


def unknown_keys(cfg: DictConfig, schema: type = RunConfig, prefix: str = "") -> list[tuple[str, list[str]]]:
    """``(key, close matches)`` for every key of ``cfg`` that the schema does not declare.

    Hydra rejects ``train.epoc=3`` against the schema, but ``+train.epoc=3`` (which Hydra itself
    suggests for that typo) adds the key with the schema's check switched off; this catches it.
    """
    fields = {f.name: f for f in dataclasses.fields(schema)}
    found = []
    for key in cfg.keys():
        name = f"{prefix}{key}"
        if key not in fields:
            found.append((name, difflib.get_close_matches(str(key), list(fields), n=1)))
            continue
        kind = fields[key].type
        sub = _SCHEMAS.get(kind if isinstance(kind, str) else getattr(kind, "__name__", ""))
        node = cfg[key]
        if sub is not None and isinstance(node, DictConfig) and name not in FREE_FORM:
            found += unknown_keys(node, sub, f"{name}.")
    return found


_SCHEMAS = {cls.__name__: cls for cls in (DatasetConfig, MethodConfig, OptimConfig, TrainConfig)}


def _unknown_key_message(unknown: list[tuple[str, list[str]]]) -> str:
    key, close = unknown[0]
    head = key.rpartition(".")[0]
    hint = f"; did you mean {head + '.' if head else ''}{close[0]}?" if close else ""
    more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
    return f"unknown key {key}{more}{hint} (`python -m asym_sweep --cfg job` lists every key)"


def validate(cfg: DictConfig) -> None:
    """Semantic checks Hydra cannot do; raises `ConfigError` with a one-line message."""
    unknown = unknown_keys(cfg)
    if unknown:
        raise ConfigError(_unknown_key_message(unknown))
    try:
        parse_arch(cfg.arch)
        spec = MethodConfig.from_config(cfg.method)
        spec.make_rule().check_training(int(cfg.train.epochs))  # also rejects an unknown scope
    except ValueError as err:
        raise ConfigError(str(err)) from None
    checks = [
        (cfg.train.epochs >= 1, f"train.epochs must be >= 1, got {cfg.train.epochs}"),
        (cfg.train.batch_size >= 1, f"train.batch_size must be >= 1, got {cfg.train.batch_size}"),
        (cfg.train.eval_batch_size >= 1, "train.eval_batch_size must be >= 1"),
        (cfg.dataset.val_size >= 0, f"dataset.val_size must be >= 0, got {cfg.dataset.val_size}"),
        (cfg.dataset.train_limit is None or cfg.dataset.train_limit >= 1, "dataset.train_limit must be >= 1 or null"),
        (cfg.threads >= 0, f"threads must be >= 0, got {cfg.threads}"),
        (cfg.progress in ("auto", "on", "off"), f"progress must be auto, on or off, got {cfg.progress!r}"),
        (cfg.projection in ("off", "print", "only"), f"projection must be off, print or only, got {cfg.projection!r}"),
        (
            cfg.device == "auto" or cfg.device.split(":")[0] in ("cpu", "cuda", "mps"),
            f"device must be auto, cpu or cuda[:N], got {cfg.device!r}",
        ),
        (0.0 <= cfg.method.dropout < 1.0, f"method.dropout must be in [0, 1), got {cfg.method.dropout}"),
        (
            cfg.method.dropout_at in DROPOUT_AT,
            f"method.dropout_at must be one of {', '.join(DROPOUT_AT)}, got {cfg.method.dropout_at!r}",
        ),
        (
            cfg.dataset.scaling in SCALINGS,
            f"dataset.scaling must be one of {', '.join(SCALINGS)}, got {cfg.dataset.scaling!r}",
        ),
        (cfg.seed >= 0, f"seed must be >= 0, got {cfg.seed}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    if str(cfg.device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device={cfg.device} but CUDA is not available on this machine; use device=cpu or device=auto"
        )
