"""The command line, run for real in subprocesses: errors, skipping, faults, launchers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asym_sweep import records
from conftest import make_idx_dataset
from helpers import cli, small_overrides

METRICS = ("train_loss", "val_loss", "val_acc", "test_loss", "test_acc")


def result_of(runs: Path, arch: str, tag: str, seed: int = 0) -> dict:
    return json.loads((runs / "fashion_mnist" / arch / tag / f"seed{seed}" / records.RESULT_FILE).read_text())


def test_single_run_then_skip(tiny_data, tmp_path):
    runs = tmp_path / "runs"
    first = cli(small_overrides(tiny_data, runs), tmp_path)
    assert first.returncode == 0, first.stderr
    assert "asym-sweep: done" in first.stderr and "val acc" in first.stderr
    folder = runs / "fashion_mnist" / "l1-32" / "topk-k40" / "seed0"
    assert (folder / ".hydra" / "config.yaml").is_file()
    second = cli(small_overrides(tiny_data, runs, threads=2), tmp_path)
    assert second.returncode == 0 and "skipped" in second.stderr


def test_completed_run_with_other_settings_is_not_overwritten(tiny_data, tmp_path):
    runs = tmp_path / "runs"
    assert cli(small_overrides(tiny_data, runs), tmp_path).returncode == 0
    before = result_of(runs, "l1-32", "topk-k40")
    other = cli(small_overrides(tiny_data, runs, **{"train.batch_size": 10}), tmp_path)
    assert other.returncode == 2
    assert "other settings (train.batch_size: 50 -> 10)" in other.stderr and "Traceback" not in other.stderr
    assert result_of(runs, "l1-32", "topk-k40") == before
    saved = (runs / "fashion_mnist/l1-32/topk-k40/seed0/.hydra/config.yaml").read_text()
    assert "batch_size: 50" in saved


@pytest.mark.parametrize(
    "override,message",
    [
        ("arch=l0-64", "bad architecture 'l0-64'"),
        ("method=nope", "Could not find 'method/nope'"),
        ("train.epoch=3", "Key 'epoch' not in 'TrainConfig'"),
    ],
)
def test_bad_input_is_one_clear_error(tiny_data, tmp_path, override, message):
    runs = tmp_path / "runs"
    done = cli(small_overrides(tiny_data, runs) + [override], tmp_path)
    assert done.returncode != 0 and message in done.stderr
    assert "Traceback" not in done.stderr
    assert not any(p.name == records.RESULT_FILE for p in runs.rglob("*")) if runs.exists() else True
    assert not list(runs.glob("fashion_mnist/*")) if runs.exists() else True


def test_missing_data_is_one_clear_error(tmp_path):
    done = cli(small_overrides(tmp_path / "empty", tmp_path / "runs") + ["dataset=mnist"], tmp_path, env={"ASYM_SWEEP_DATA": ""})
    assert done.returncode == 2
    assert "mnist data not found; searched:" in done.stderr and "Traceback" not in done.stderr
    assert not list((tmp_path / "runs").glob("mnist/*"))


def test_small_multirun_completes_then_relaunch_skips_all(tiny_data, tmp_path):
    runs = tmp_path / "runs"
    args = ["--multirun", "arch=l1-16,l2-16", "method=topk,partial", "seed=0,1"]
    first = cli(small_overrides(tiny_data, runs) + args, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "8 runs: 8 completed, 0 skipped, 0 failed" in first.stderr
    assert len(list(runs.glob("fashion_mnist/*/*/seed*/result.json"))) == 8
    again = cli(small_overrides(tiny_data, runs) + args, tmp_path)
    assert again.returncode == 0 and "8 runs: 0 completed, 8 skipped, 0 failed" in again.stderr


def test_failed_run_is_recorded_and_the_sweep_goes_on(tiny_data, tmp_path):
    runs = tmp_path / "runs"
    # l1-2000000000 cannot be allocated (a real out-of-memory error inside the run).
    done = cli(small_overrides(tiny_data, runs) + ["--multirun", "arch=l1-2000000000,l1-32"], tmp_path)
    assert done.returncode == 1
    assert "2 runs: 1 completed, 0 skipped, 1 failed" in done.stderr
    assert "failed: " in done.stderr and "l1-2000000000" in done.stderr
    failed = json.loads((runs / "fashion_mnist/l1-2000000000/topk-k40/seed0" / records.RESULT_FILE).read_text())
    assert failed["status"] == "failed" and "allocate" in failed["error"]
    assert result_of(runs, "l1-32", "topk-k40")["status"] == "completed"


def test_variant_settings_never_overwrite_a_finished_run_in_a_sweep(tiny_data, tmp_path):
    runs = tmp_path / "runs"
    done = cli(small_overrides(tiny_data, runs) + ["--multirun", "method=dropout", "train.optim.lr=0.001,0.002"], tmp_path)
    assert done.returncode == 2 and "1 completed, 0 skipped, 0 failed, 1 invalid" in done.stderr
    assert "other settings (train.optim.lr: 0.001 -> 0.002)" in done.stderr


def test_nan_failure_writes_status_and_error(tiny_data, tmp_path):
    runs = tmp_path / "runs"
    done = cli(small_overrides(tiny_data, runs, method="dropout", **{"train.optim.lr": 1e30}), tmp_path)
    assert done.returncode == 1 and "TrainingDiverged" in done.stderr and "Traceback" not in done.stderr
    folder = runs / "fashion_mnist/l1-32/dropout-p0.4/seed0"
    result = json.loads((folder / records.RESULT_FILE).read_text())
    assert result["status"] == "failed" and "nan" in result["error"]
    assert "Traceback" in (folder / records.ERROR_FILE).read_text()
    # A failed run is redone on relaunch, not skipped.
    again = cli(small_overrides(tiny_data, runs, method="dropout", **{"train.optim.lr": 1e30}), tmp_path)
    assert "skipped" not in again.stderr and again.returncode == 1


def test_corrupt_result_and_checkpoint_are_redone(tiny_data, tmp_path):
    runs = tmp_path / "runs"
    assert cli(small_overrides(tiny_data, runs), tmp_path).returncode == 0
    folder = runs / "fashion_mnist/l1-32/topk-k40/seed0"
    good = json.loads((folder / records.RESULT_FILE).read_text())
    (folder / records.RESULT_FILE).write_text('{"status": "completed", "fin')
    redo = cli(small_overrides(tiny_data, runs), tmp_path)
    assert redo.returncode == 0 and "unreadable" in redo.stderr and "done" in redo.stderr
    assert [h["val_acc"] for h in result_of(runs, "l1-32", "topk-k40")["history"]] == [h["val_acc"] for h in good["history"]]
    (folder / records.RESULT_FILE).unlink()
    (folder / records.CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    redo = cli(small_overrides(tiny_data, runs), tmp_path)
    assert redo.returncode == 0 and "checkpoint.pt is unreadable" in redo.stderr and "from scratch" in redo.stderr


def test_sigkill_mid_epoch_resumes_to_identical_numbers(tmp_path):
    data = make_idx_dataset(tmp_path / "data", "FashionMNIST", n_train=2050, n_test=100)
    overrides = small_overrides(data, tmp_path / "killed", arch="l2-256", **{"train.epochs": 4, "train.batch_size": 10, "method": "partial"})
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("ASYM_SWEEP_LAUNCH", None)
    proc = subprocess.Popen([sys.executable, "-m", "asym_sweep", *overrides], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    folder = tmp_path / "killed/fashion_mnist/l2-256/partial-k1_40-k2_200/seed0"
    deadline = time.time() + 120
    while not (folder / records.CHECKPOINT_FILE).exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.15)  # into the second epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (folder / records.RESULT_FILE).exists(), "the run finished before it could be killed"
    assert records.load_checkpoint(folder)[1] is None  # the snapshot survived intact
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]

    resumed = cli(overrides, tmp_path)
    assert resumed.returncode == 0 and "resuming" in resumed.stderr, resumed.stderr
    straight = cli(small_overrides(data, tmp_path / "straight", arch="l2-256", **{"train.epochs": 4, "train.batch_size": 10, "method": "partial"}), tmp_path)
    assert straight.returncode == 0
    a = json.loads((folder / records.RESULT_FILE).read_text())
    b = json.loads((tmp_path / "straight/fashion_mnist/l2-256/partial-k1_40-k2_200/seed0" / records.RESULT_FILE).read_text())
    assert a["resumed_at_epochs"] and not b["resumed_at_epochs"]
    assert [{k: h[k] for k in METRICS} for h in a["history"]] == [{k: h[k] for k in METRICS} for h in b["history"]]
    assert a["final"] == b["final"]


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_parallel_launchers_run_a_two_job_sweep(tiny_data, tmp_path, launcher):
    runs = tmp_path / "runs"
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else ["hydra.launcher.timeout_min=5", "hydra.launcher.cpus_per_task=1"]
    overrides = [o for o in small_overrides(tiny_data, runs) if not o.startswith("threads=")]
    done = cli(overrides + ["--multirun", f"hydra/launcher={launcher}", "seed=0,1"] + extra, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 runs: 2 completed" in done.stderr
    for seed in (0, 1):
        assert result_of(runs, "l1-32", "topk-k40", seed)["status"] == "completed"
    threads = result_of(runs, "l1-32", "topk-k40", 0)["environment"]["threads"]
    assert threads == (max(1, (os.cpu_count() or 1) // 2) if launcher == "joblib" else 1)
