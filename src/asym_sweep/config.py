"""Structured config schemas (registered with Hydra's ConfigStore) and run identity.

The YAML files under ``conf/`` fill these dataclasses; a key that is not here,
or a value of the wrong type, is rejected by Hydra before anything trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import II, MISSING, DictConfig, OmegaConf

from asym_sweep.methods import MethodSpec
from asym_sweep.model import parse_arch
from asym_sweep.resources import available_cores


CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
THESIS_METHODS = ("dropout", "topk", "complete", "partial")


@dataclass
class DatasetConfig:
    name: str = MISSING  # "fashion_mnist" or "mnist"
    # Searched first; then $ASYM_SWEEP_DATA, then Debian's dataset folder.
    root: Optional[str] = "data"
    # Thesis 9.1.2: the first 5,000 training images are the validation set.
    val_size: int = 5000
    # Use only the first N of the remaining training images (None: all of them).
    train_limit: Optional[int] = None
    epochs: int = MISSING  # the thesis' epoch count for this dataset


@dataclass
class MethodConfig:
    name: str = MISSING
    rule: str = MISSING
    params: Dict[str, Any] = field(default_factory=dict)
    scope: str = "batch"
    dropout: float = 0.0
    sparsify_output: bool = True


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
    runs_root: str = "outputs/runs"
    # Number of seeds that the thesis presets sweep (seed=range(0, n_seeds)).
    n_seeds: int = 5


def register_configs() -> None:
    """Make the schemas and resolvers known to Hydra; safe to call more than once."""
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    if not OmegaConf.has_resolver("method_tag"):
        OmegaConf.register_new_resolver("method_tag", lambda m: MethodSpec.from_config(m).tag())
    if not OmegaConf.has_resolver("cores"):
        OmegaConf.register_new_resolver("cores", available_cores)


# Settings that change how a run executes but not what it computes; a finished
# run is reused whatever their values.
NON_IDENTITY_KEYS = ("device", "threads", "progress", "runs_root", "n_seeds", "dataset.root")


def run_dir(cfg: DictConfig | RunConfig) -> Path:
    """``<runs_root>/<dataset>/<arch>/<method tag>/seed<seed>``: one folder per run identity."""
    tag = MethodSpec.from_config(cfg.method).tag()
    return Path(cfg.runs_root) / cfg.dataset.name / cfg.arch / tag / f"seed{cfg.seed}"


def identity(cfg: DictConfig | dict) -> dict:
    """The resolved config minus the settings in `NON_IDENTITY_KEYS`."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
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


def validate(cfg: DictConfig) -> None:
    """Semantic checks Hydra cannot do; raises `ConfigError` with a one-line message."""
    try:
        parse_arch(cfg.arch)
        spec = MethodSpec.from_config(cfg.method)
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
        (cfg.device == "auto" or cfg.device.split(":")[0] in ("cpu", "cuda", "mps"), f"device must be auto, cpu or cuda[:N], got {cfg.device!r}"),
        (0.0 <= cfg.method.dropout < 1.0, f"method.dropout must be in [0, 1), got {cfg.method.dropout}"),
        (cfg.seed >= 0, f"seed must be >= 0, got {cfg.seed}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def method_from_conf(name: str, conf_dir: Path = CONF_DIR) -> MethodSpec:
    """The method defined by ``conf/method/<name>.yaml``."""
    return MethodSpec.from_config(OmegaConf.load(conf_dir / "method" / f"{name}.yaml"))
