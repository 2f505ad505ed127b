"""``python -m asym_sweep [--multirun] key=value ...``: run (or skip) one configuration per job.

Hydra composes the config from ``conf/`` and creates the run directory, which is
derived from the run's identity (``<runs_root>/<dataset>/<arch>/<method tag>/seed<N>``),
never from a timestamp. This module decides what to do in it: reject a bad
config, skip a finished run, refuse to overwrite a finished run made with other
settings, or train (resuming a checkpoint).
"""

from __future__ import annotations

import os
import shutil
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from asym_sweep import records, resources, sweep, train
from asym_sweep.config import CONF_DIR, ConfigError, identity, identity_differences, register_configs, validate
from asym_sweep.data import DataError

def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _restore_saved_config(run_dir: Path, config: dict) -> None:
    """Hydra rewrote ``.hydra/config.yaml`` on launch; put back the one of the recorded run."""
    OmegaConf.save(OmegaConf.create(config), run_dir / ".hydra" / "config.yaml")


def _remove_if_only_hydra_files(run_dir: Path) -> None:
    """Undo the folder Hydra made for a job that was rejected before it ran."""
    if not run_dir.is_dir():
        return
    leftovers = {p.name for p in run_dir.iterdir()} - {".hydra", "__main__.log"}
    if leftovers:
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    for parent in list(run_dir.parents)[:3]:  # method/arch/dataset folders, if now empty
        try:
            parent.rmdir()
        except OSError:
            break


def _record_failure(run_dir: Path, cfg: DictConfig, err: BaseException) -> None:
    try:
        _write_failure(run_dir, cfg, err)
    except OSError as write_err:  # the sweep goes on even if the folder is unwritable
        log(f"asym-sweep: could not record the failure in {run_dir}: {write_err}")


def _write_failure(run_dir: Path, cfg: DictConfig, err: BaseException) -> None:
    message = f"{type(err).__name__}: {err}"
    records.write_bytes_atomic(run_dir / records.ERROR_FILE, traceback.format_exc().encode())
    records.write_json_atomic(
        run_dir / records.RESULT_FILE,
        {
            "schema_version": records.SCHEMA_VERSION,
            "status": "failed",
            "dataset": cfg.dataset.name,
            "arch": str(cfg.arch),
            "method": cfg.method.name,
            "seed": int(cfg.seed),
            "error": message,
            "config": OmegaConf.to_container(cfg, resolve=True),
        },
    )


def execute(cfg: DictConfig, run_dir: Path, threads: int, jobs: int = 1) -> str:
    """Do one job; returns its outcome: completed, skipped, failed or invalid."""
    try:
        validate(cfg)
    except ConfigError as err:
        log(f"asym-sweep: error: {err}")
        _remove_if_only_hydra_files(run_dir)
        sweep.record_outcome(cfg.runs_root, run_dir, "invalid", str(err))
        return "invalid"

    existing, problem = records.read_result(run_dir)
    if problem:
        log(f"asym-sweep: {problem}; running it again")
    if existing is not None and existing["status"] == "completed":
        _restore_saved_config(run_dir, existing["config"])
        differences = identity_differences(identity(existing["config"]), identity(cfg))
        if not differences:
            log(f"asym-sweep: skipped {run_dir}: already completed")
            sweep.record_outcome(cfg.runs_root, run_dir, "skipped")
            return "skipped"
        message = (
            f"{run_dir} holds a completed run made with other settings ({'; '.join(differences[:3])}); "
            "it is kept: pass runs_root=<another folder> for this variant"
        )
        log(f"asym-sweep: error: {message}")
        sweep.record_outcome(cfg.runs_root, run_dir, "invalid", message)
        return "invalid"

    try:
        result = train.run(cfg, run_dir, threads=threads, log=log, jobs=jobs)
    except DataError as err:
        log(f"asym-sweep: error: {err}")
        _remove_if_only_hydra_files(run_dir)
        sweep.record_outcome(cfg.runs_root, run_dir, "invalid", str(err))
        return "invalid"
    except Exception as err:  # recorded, so that a sweep goes on with its other runs
        _record_failure(run_dir, cfg, err)
        log(f"asym-sweep: failed {run_dir}: {type(err).__name__}: {err} (traceback in {run_dir / records.ERROR_FILE})")
        sweep.record_outcome(cfg.runs_root, run_dir, "failed", f"{type(err).__name__}: {err}")
        return "failed"

    (run_dir / records.ERROR_FILE).unlink(missing_ok=True)
    f, t = result["final"], result["timing"]
    log(
        f"asym-sweep: done {run_dir}: val acc {f['val_acc']:.4f}, test acc {f['test_acc']:.4f}, "
        f"backward {t['backward_s']:.2f}s (selection {t['select_s']:.2f}s), wall {t['wall_s']:.1f}s"
    )
    sweep.record_outcome(cfg.runs_root, run_dir, "completed")
    return "completed"


def jobs_of_launch() -> int:
    """How many jobs the launcher runs at once on this machine (1 for the basic launcher)."""
    launcher = HydraConfig.get().launcher
    if "cpus_per_task" in launcher and launcher.cpus_per_task:
        return 1  # a cluster job has its cores to itself
    n_jobs = launcher.get("n_jobs") if "n_jobs" in launcher else 1
    if n_jobs is None or n_jobs < 1:  # joblib: -1 means one job per core
        return resources.available_cores()
    return int(n_jobs)


def threads_for_job(cfg: DictConfig, jobs: int) -> resources.ThreadChoice:
    """Torch threads so that parallel jobs x threads fits the cores other work leaves free."""
    launcher = HydraConfig.get().launcher
    if cfg.threads == 0 and "cpus_per_task" in launcher and launcher.cpus_per_task:
        cores = int(launcher.cpus_per_task)
        return resources.ThreadChoice(cores, 1, cores, None, "hydra.launcher.cpus_per_task")
    busy = resources.other_busy_cores() if cfg.threads == 0 else None
    return resources.choose_threads(int(cfg.threads), jobs, resources.available_cores(), busy)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def hydra_entry(cfg: DictConfig) -> str:
    jobs = jobs_of_launch()
    choice = threads_for_job(cfg, jobs)
    return execute(cfg, Path(HydraConfig.get().runtime.output_dir), choice.threads, jobs)


def main() -> None:
    if not CONF_DIR.is_dir():
        log(f"asym-sweep: error: config folder {CONF_DIR} not found; install the project with `pip install -e .` from its checkout")
        sys.exit(2)
    register_configs()
    hydra_entry()


if __name__ == "__main__":
    main()
