"""Helpers for tests that compose the real config or run the real command line."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from asym_sweep.config import CONF_DIR
from asym_sweep.launch import register_configs


def compose_config(overrides: list[str]) -> DictConfig:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def compose_with_hydra(overrides: list[str]) -> DictConfig:
    """As `compose_config`, with the ``hydra`` node (the sweeper's and launcher's settings)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


# What `small_overrides` changes from the reference setup, as it appears in the run folder's
# name (config.settings_tag): a 50-image validation set and one epoch.
TINY = "+val50+e1"


def small_overrides(data_root: Path, runs_root: Path, **extra: object) -> list[str]:
    """Shrink a run to seconds: toy data, one epoch, one thread (folder tags end in `TINY`)."""
    base = {
        "dataset.root": str(data_root),
        "dataset.val_size": 50,
        "train.epochs": 1,
        "runs_root": str(runs_root),
        "threads": 1,
        "progress": "off",
        "arch": "l1-32",
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    full_env.pop("ASYM_SWEEP_LAUNCH", None)
    flags = [a for a in args if a.startswith("-")]  # Hydra wants --multirun before overrides
    overrides = [a for a in args if not a.startswith("-")]
    return subprocess.run(
        [sys.executable, "-m", "asym_sweep", *flags, *overrides],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` (scripts are not a package) as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def record_json(
    config: dict,
    status: str = "completed",
    timing: dict | None = None,
    environment: dict | None = None,
    **fields,
) -> dict:
    """A well-formed ``result.json`` (`records.Result`) of ``config``'s run with made-up numbers:
    ``timing`` and ``environment`` replace some of their parts' fields, ``fields`` the record's."""
    from asym_sweep import records

    who = dict(dataset=config["dataset"]["name"], arch=config["arch"], method=config["method"]["name"])
    who.update(seed=config["seed"], config=config)
    if status != "completed":
        return records.Result(status=status, error="RuntimeError: made up", **who).to_json() | fields
    epochs = config["train"]["epochs"]
    entry = {"train_loss": 0.5, "val_loss": 0.5, "val_acc": 0.8, "test_loss": 0.5, "test_acc": 0.8}
    history = [
        {"epoch": e + 1, **entry, **{k: 1.0 for k in records.EPOCH_KEYS if k.endswith("_s")}} for e in range(epochs)
    ]
    env = dict(torch="2", python="3", device="cpu", device_name="x", threads=1, malloc_keeps_freed_memory=True)
    env.update(host="h", data_source="test", **(environment or {}))
    result = records.Result(
        status=status,
        **who,
        epochs=epochs,
        history=history,
        final=dict(entry),
        timing=records.Timing(**({k: 1.0 for k in records.TIMING_KEYS} | (timing or {}))),
        flops=records.Flops(**{k: 1.0 for k in records.FLOP_KEYS}),
        environment=records.Environment(**env),
    )
    return result.to_json() | fields
