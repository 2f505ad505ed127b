"""``python -m asym_sweep [--multirun] key=value ...``: run (or skip) one configuration per job.

Hydra composes the config from ``conf/`` and creates the run folder, which is derived from
the run's identity (``<runs_root>/<dataset>/<arch>/<run tag>/seed<N>``, `config.run_subdir`),
never from a timestamp. This module decides what to do in it: reject a bad config (touching
nothing), skip a run another launch is training (its lock, `runlock.RunLock`), skip a
finished run, refuse to overwrite a finished run made with other settings, or train
(resuming a checkpoint).

Exit codes (`launch.EXIT_*`): 0 every run completed or was skipped; 1 a run failed while
training; 2 bad input (a config, override or data problem found before training); 130
interrupted (Ctrl-C), with the summary of the launch so far.
"""

from __future__ import annotations

import logging
import shutil
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from asym_sweep import launch, records, resources, runlock, train
from asym_sweep.config import CONF_DIR, ConfigError, identity, identity_differences, validate
from asym_sweep.data import DataError
from asym_sweep.progress import FILE_LOGGER, RUN_LOGGER


def log(message: str) -> None:
    logging.getLogger(RUN_LOGGER).info(message)


def _close_run_log(run_dir: Path) -> None:
    """Detach the run's log file (`records.LOG_FILE`) before its folder is removed."""
    for name in (RUN_LOGGER, FILE_LOGGER):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == run_dir.resolve():
                handler.close()
                logger.removeHandler(handler)


def _remove_if_empty(run_dir: Path) -> None:
    """Remove a run folder that holds nothing of a run (only this launch's log and lock) and its
    empty parents. The caller holds the folder's lock."""
    if {p.name for p in run_dir.iterdir()} - {records.LOG_FILE, runlock.LOCK_FILE}:
        return
    _close_run_log(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    for parent in list(run_dir.parents)[:3]:  # the run tag, arch and dataset folders, if now empty
        try:
            parent.rmdir()
        except OSError:
            break


def _discard_if_new(run_dir: Path) -> None:
    """`_remove_if_empty` for a job rejected before it took the lock: a folder another launch
    holds is left alone."""
    if not run_dir.is_dir():
        return
    lock, _ = runlock.acquire_run_lock(run_dir, tries=1)
    if lock is not None:
        with lock:
            _remove_if_empty(run_dir)


def _record_failure(run_dir: Path, cfg: DictConfig, err: BaseException) -> None:
    try:
        records.write_bytes_atomic(run_dir / records.ERROR_FILE, traceback.format_exc().encode())
        records.write_result(run_dir, records.failed_result(cfg, err))
    except OSError as write_err:  # the sweep goes on even if the folder is unwritable
        log(f"asym-sweep: could not record the failure in {run_dir}: {write_err}")


def execute(cfg: DictConfig, run_dir: Path, threads: resources.ThreadChoice | None = None) -> str:
    """Do one job; returns its outcome (one of `launch.OUTCOMES`)."""
    try:
        validate(cfg)
    except ConfigError as err:
        return _reject(cfg, run_dir, str(err))
    lock, holder = runlock.acquire_run_lock(run_dir)
    if lock is None:
        assert holder is not None
        log(f"asym-sweep: {run_dir} in progress ({holder.describe()}): skipped")
        launch.record_outcome(run_dir, "in progress", holder.describe())
        return "in progress"
    with lock:
        return _execute_locked(cfg, run_dir, threads)


def _reject(cfg: DictConfig, run_dir: Path, message: str, locked: bool = False) -> str:
    log(f"asym-sweep: error: {message}")
    if locked:
        _remove_if_empty(run_dir)
    else:
        _discard_if_new(run_dir)
    launch.record_outcome(run_dir, "invalid", message)
    return "invalid"


def _execute_locked(cfg: DictConfig, run_dir: Path, threads: resources.ThreadChoice | None) -> str:
    existing, problem = records.read_result(run_dir)
    if problem:
        log(f"asym-sweep: {problem}; running it again")
    if existing is not None and existing.completed:
        differences = identity_differences(identity(existing.config), identity(cfg))
        if not differences:
            log(f"asym-sweep: skipped {run_dir}: already completed")
            launch.record_outcome(run_dir, "skipped")
            return "skipped"
        message = (
            f"{run_dir} holds a completed run made with other settings ({'; '.join(differences[:3])}); "
            "it is kept: pass runs_root=<another folder> for this variant"
        )
        log(f"asym-sweep: error: {message}")
        launch.record_outcome(run_dir, "invalid", message)
        return "invalid"

    # Written only now, under the lock: the folder's config is always that of its live or last run.
    records.save_run_config(run_dir, cfg, list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [])
    try:
        result = train.run(cfg, run_dir, threads=threads, log=log)
    except DataError as err:
        if not (run_dir / records.CHECKPOINT_FILE).exists():
            shutil.rmtree(run_dir / records.HYDRA_DIR, ignore_errors=True)  # written just above
        return _reject(cfg, run_dir, str(err), locked=True)
    except train.Interrupted as stop:
        when = f"after epoch {stop.epochs_done}" if stop.epochs_done else "in its first epoch"
        log(f"asym-sweep: {run_dir}: interrupted {when}; run the same command again to resume")
        launch.record_outcome(run_dir, "interrupted", when)
        raise
    except Exception as err:  # recorded, so that a sweep goes on with its other runs
        _record_failure(run_dir, cfg, err)
        log(f"asym-sweep: failed {run_dir}: {type(err).__name__}: {err} (traceback in {run_dir / records.ERROR_FILE})")
        launch.record_outcome(run_dir, "failed", f"{type(err).__name__}: {err}")
        return "failed"

    (run_dir / records.ERROR_FILE).unlink(missing_ok=True)
    f, t = result.final, result.timing
    log(
        f"asym-sweep: done {run_dir}: val acc {f['val_acc']:.4f}, test acc {f['test_acc']:.4f}, "
        f"backward {t.backward_s:.2f}s (selection {t.select_s:.2f}s), wall {t.wall_s:.1f}s"
    )
    launch.record_outcome(run_dir, "completed")
    return "completed"


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def hydra_entry(cfg: DictConfig) -> str:
    return execute(
        cfg, Path(HydraConfig.get().runtime.output_dir), launch.threads_for_job(cfg, launch.jobs_of_launch())
    )


def main() -> None:
    if not CONF_DIR.is_dir():
        print(
            f"asym-sweep: error: config folder {CONF_DIR} not found; install the project with `pip install -e .` "
            "from its checkout",
            file=sys.stderr,
        )
        sys.exit(launch.EXIT_INVALID)
    launch.register_configs()
    try:
        hydra_entry()
    except launch.LaunchExit:
        raise
    except KeyboardInterrupt:
        print(launch.interrupted_summary(), file=sys.stderr)
        sys.exit(launch.EXIT_INTERRUPTED)
    except SystemExit as stop:
        # Hydra reports what it could not compose (an unknown group, a bad override, a missing
        # key) and exits 1; here that is bad input, and bad input exits 2.
        if stop.code == 1:
            sys.exit(launch.EXIT_INVALID)
        raise


if __name__ == "__main__":
    main()
