"""The Slurm launcher (conf/hydra/launcher/slurm.yaml) against a real Slurm: the one-node cluster
of scripts/slurm_local.sh, which .ci/run starts where it can (root, Debian's packages). Skipped,
with the reason, where no Slurm answers ($SLURM_CONF unset or its node not idle).

A small sweep runs to completion with records of the same form as the local launcher's; a
relaunch skips every run; a job cancelled mid-run (scancel) resumes from its checkpoint on the
next launch, and a job requeued while running (scontrol requeue, as a preemption does) resumes
by itself; both end on the numbers of an uninterrupted run. The local cluster has no accounting
(no slurmdbd): submitit warns that it cannot read sacct and follows the jobs by their results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import cli

REPO = Path(__file__).resolve().parents[1]


def slurm_idle() -> str | None:
    """None where a Slurm node answers idle, else why not."""
    if not os.environ.get("SLURM_CONF"):
        return "no Slurm: $SLURM_CONF is unset (sudo scripts/slurm_local.sh start, then export SLURM_CONF=...)"
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no Slurm client tools (sinfo, sbatch) on PATH"
    done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if done.returncode != 0 or "idle" not in done.stdout.split():
        answer = (done.stdout + done.stderr).strip()[:200]
        return f"Slurm at $SLURM_CONF={os.environ['SLURM_CONF']} has no idle node: {answer}"
    return None


pytestmark = pytest.mark.skipif(slurm_idle() is not None, reason=str(slurm_idle()))

SLURM = [
    "hydra/launcher=slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=20",
]


def overrides(data: Path, runs: Path, **extra: object) -> list[str]:
    base = {"seed": 0, "progress": "off", "dataset.root": str(data), "runs_root": str(runs)}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def result(runs: Path, arch: str, tag: str) -> dict:
    return json.loads((runs / "fashion_mnist" / arch / tag / "seed0" / "result.json").read_text())


def jobs_in_queue() -> list[tuple[str, str]]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, timeout=30).stdout
    return [tuple(line.split()) for line in out.splitlines() if line.strip()]


def wait_for(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_a_sweep_on_slurm_completes_and_a_relaunch_skips_it(shared_data, tmp_path):
    runs, local = tmp_path / "runs", tmp_path / "local"
    sweep = [
        "--multirun",
        *SLURM,
        "arch=l1-32,l2-32",
        "method=topk,dropout",
        *overrides(shared_data, runs, **{"train.epochs": 1, "dataset.train_limit": 2000}),
    ]
    done = cli(sweep, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "4 runs: 4 completed, 0 skipped, 0 failed, 0 invalid" in done.stderr
    # The same run through the local launcher: the records have the same form.
    mine = cli(
        [
            "arch=l1-32",
            "method=topk",
            *overrides(shared_data, local, **{"train.epochs": 1, "dataset.train_limit": 2000}),
            "threads=1",
        ],
        cwd=REPO,
    )
    assert mine.returncode == 0, mine.stderr[-2000:]
    on_slurm, here = result(runs, "l1-32", "topk-k40+n2000+e1"), result(local, "l1-32", "topk-k40+n2000+e1")
    assert set(on_slurm) == set(here) and set(on_slurm["environment"]) == set(here["environment"])
    assert on_slurm["final"] == here["final"]  # one thread each: the same numbers
    for arch in ("l1-32", "l2-32"):
        for tag in ("topk-k40+n2000+e1", "dropout-p0.4+n2000+e1"):
            assert (runs / "fashion_mnist" / arch / tag / "seed0" / ".hydra" / "config.yaml").is_file()
    again = cli(sweep, cwd=REPO, timeout=600)
    assert again.returncode == 0 and "4 runs: 0 completed, 4 skipped, 0 failed, 0 invalid" in again.stderr


LONG = {"train.epochs": 4, "dataset.train_limit": 30000}
LONG_TAG = "topk-k40+n30000+e4"


def long_run(data: Path, runs: Path) -> list[str]:
    # Epochs of a few seconds each: long enough to be caught, and killed, between its checkpoints.
    return ["--multirun", *SLURM, "arch=l3-512", "method=topk", *overrides(data, runs, **LONG)]


def start_and_catch_mid_run(args: list[str], run_dir: Path) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("ASYM_SWEEP_LAUNCH", None)
    launch = subprocess.Popen(
        [sys.executable, "-m", "asym_sweep", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: (run_dir / "checkpoint.pt").is_file(), 300, "the first epoch's checkpoint")
    running = [job for job, state in jobs_in_queue() if state == "RUNNING"]
    assert len(running) == 1, jobs_in_queue()
    return launch, running[0]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """The long run's record, trained in one go by the local launcher on one thread (as a job runs)."""
    from conftest import real_data_dir

    data, ref = real_data_dir(), tmp_path_factory.mktemp("reference")
    if data is None:
        pytest.skip("Fashion-MNIST not found: set ASYM_SWEEP_DATA to its folder to run this test")
    done = cli(["arch=l3-512", "method=topk", "threads=1", *overrides(data, ref, **LONG)], cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return result(ref, "l3-512", LONG_TAG)


def test_a_cancelled_job_resumes_from_its_checkpoint_on_relaunch(shared_data, tmp_path, uninterrupted):
    runs = tmp_path / "runs"
    run_dir = runs / "fashion_mnist" / "l3-512" / LONG_TAG / "seed0"
    launch, job = start_and_catch_mid_run(long_run(shared_data, runs), run_dir)
    subprocess.run(["scancel", job], check=True, timeout=30)
    wait_for(lambda: job not in [j for j, _ in jobs_in_queue()], 120, "the cancelled job to leave the queue")
    # Without Slurm's accounting (no sacct here) submitit cannot learn that a job was cancelled and
    # waits on: the user stops the launch (Ctrl-C) and relaunches, as after any failure.
    launch.terminate()
    launch.communicate(timeout=120)
    assert not (run_dir / "result.json").is_file() or result(runs, "l3-512", LONG_TAG)["status"] != "completed"
    relaunch = cli(long_run(shared_data, runs), cwd=REPO, timeout=600)
    assert relaunch.returncode == 0, relaunch.stderr[-2000:]
    resumed = result(runs, "l3-512", LONG_TAG)
    assert resumed["status"] == "completed" and resumed["resumed_at_epochs"] and resumed["resumed_at_epochs"][0] >= 1
    assert resumed["final"] == uninterrupted["final"]


def test_a_requeued_job_resumes_by_itself(shared_data, tmp_path, uninterrupted):
    runs = tmp_path / "runs"
    run_dir = runs / "fashion_mnist" / "l3-512" / LONG_TAG / "seed0"
    launch, job = start_and_catch_mid_run(long_run(shared_data, runs), run_dir)
    subprocess.run(["scontrol", "requeue", job], check=True, timeout=30)
    _, err = launch.communicate(timeout=600)
    assert launch.returncode == 0, err[-2000:]
    resumed = result(runs, "l3-512", LONG_TAG)
    assert resumed["status"] == "completed" and resumed["resumed_at_epochs"] and resumed["resumed_at_epochs"][0] >= 1
    assert resumed["final"] == uninterrupted["final"]
