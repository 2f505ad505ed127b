"""The command line, run for real in subprocesses: errors, skipping, faults, launchers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_idx_dataset
from helpers import TINY, cli, small_overrides
from omegaconf import OmegaConf

from asym_sweep import records, runlock
from asym_sweep.resources import choose_threads

METRICS = ("train_loss", "val_loss", "val_acc", "test_loss", "test_acc")


def folder(runs: Path, arch: str, tag: str, seed: int = 0) -> Path:
    """The run folder of a `small_overrides` run (its tag ends in TINY unless ``tag`` has one)."""
    return runs / "fashion_mnist" / arch / (tag if "+" in tag else tag + TINY) / f"seed{seed}"


def result_of(runs: Path, arch: str, tag: str, seed: int = 0) -> dict:
    return json.loads((folder(runs, arch, tag, seed) / records.RESULT_FILE).read_text())


def test_single_run_then_skip(tiny_data, tmp_path):
    runs = tmp_path / "runs"
    first = cli(small_overrides(tiny_data, runs), tmp_path)
    assert first.returncode == 0, first.stderr
    assert "asym-sweep: done" in first.stderr and "val acc" in first.stderr
    assert (folder(runs, "l1-32", "topk-k40") / ".hydra" / "config.yaml").is_file()
    second = cli(small_overrides(tiny_data, runs, threads=2), tmp_path)
    assert second.returncode == 0 and "skipped" in second.stderr


def test_settings_that_change_numbers_get_their_own_folder(tiny_data, tmp_path):
    """Issue 15.3: another batch size or learning rate is another run, in another folder."""
    runs = tmp_path / "runs"
    assert cli(small_overrides(tiny_data, runs), tmp_path).returncode == 0
    before = result_of(runs, "l1-32", "topk-k40")
    other = cli(small_overrides(tiny_data, runs, **{"train.batch_size": 10}), tmp_path)
    assert other.returncode == 0, other.stderr
    assert result_of(runs, "l1-32", "topk-k40") == before
    assert result_of(runs, "l1-32", f"topk-k40{TINY}+b10")["batch_size"] == 10
    sweep = cli(
        small_overrides(tiny_data, runs, method="dropout") + ["--multirun", "train.optim.lr=0.001,0.002"], tmp_path
    )
    assert sweep.returncode == 0 and "2 runs: 2 completed" in sweep.stderr
    assert result_of(runs, "l1-32", f"dropout-p0.4{TINY}+lr0.002")["config"]["train"]["optim"]["lr"] == 0.002


def test_the_reference_setup_keeps_the_plain_method_tag(tiny_data, tmp_path):
    """Runs made before settings were encoded (all at the reference setup) keep their folders."""
    from helpers import compose_config

    from asym_sweep.records import run_subdir

    cfg = compose_config(["method=topk", "arch=l2-128", "seed=3"])
    assert run_subdir(cfg) == "fashion_mnist/l2-128/topk-k40/seed3"
    cfg = compose_config(
        ["method=dropout", "arch=l1-64", "train.epochs=2", "train.batch_size=10", "dataset.train_limit=500"]
    )
    assert run_subdir(cfg) == "fashion_mnist/l1-64/dropout-p0.4+n500+e2+b10/seed0"
    assert run_subdir(compose_config(["dataset=mnist", "arch=l1-512"])) == "mnist/l1-512/topk-k40/seed0"
    # Every method takes [0, 1] pixels; standardised inputs are the reading `dropout_standard`,
    # under the tag its runs had while that was the grid's baseline.
    assert run_subdir(compose_config(["method=dropout", "arch=l1-64"])) == "fashion_mnist/l1-64/dropout-p0.4/seed0"
    assert (
        run_subdir(compose_config(["method=dropout", "dataset.scaling=standard"]))
        == "fashion_mnist/l3-256/dropout-p0.4+standard/seed0"
    )


def test_a_completed_run_is_never_overwritten_by_other_settings(tiny_data, tmp_path):
    """A folder whose result has another identity (e.g. written by an older version) is kept."""
    runs = tmp_path / "runs"
    assert cli(small_overrides(tiny_data, runs), tmp_path).returncode == 0
    path = folder(runs, "l1-32", "topk-k40") / records.RESULT_FILE
    old = json.loads(path.read_text())
    old["config"]["train"]["optim"]["beta1"] = 0.5
    path.write_text(json.dumps(old))
    again = cli(small_overrides(tiny_data, runs), tmp_path)
    assert again.returncode == 2 and "other settings (train.optim.beta1: 0.5 -> 0.9)" in again.stderr
    assert json.loads(path.read_text()) == old and "Traceback" not in again.stderr


@pytest.mark.parametrize(
    "override,message",
    [
        ("arch=l0-64", "bad architecture 'l0-64'"),
        ("method=nope", "Could not find 'method/nope'"),
        ("train.epoch=3", "Key 'epoch' not in 'TrainConfig'"),
        # Issue 15.5: these trained, or failed as runs, or pointed at a method that does not exist.
        ("+train.epoc=3", "unknown key train.epoc; did you mean train.epochs?"),
        ("+foo=1", "unknown key foo"),
        ("method.params.k=0", "k must be >= 1, got 0"),
    ],
)
def test_bad_input_is_one_clear_error(tiny_data, tmp_path, override, message):
    runs = tmp_path / "runs"
    done = cli(small_overrides(tiny_data, runs) + [override], tmp_path)
    assert done.returncode == 2 and message in done.stderr, (done.returncode, done.stderr[-2000:])
    assert "use method 'dense'" not in done.stderr
    assert "Traceback" not in done.stderr
    assert not any(p.name == records.RESULT_FILE for p in runs.rglob("*")) if runs.exists() else True
    assert not list(runs.glob("fashion_mnist/*")) if runs.exists() else True


def test_cuda_without_cuda_is_bad_input(tiny_data, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    runs = tmp_path / "runs"
    done = cli(small_overrides(tiny_data, runs, device="cuda"), tmp_path)
    assert done.returncode == 2 and "CUDA is not available" in done.stderr and "Traceback" not in done.stderr
    assert not list(runs.glob("fashion_mnist/*"))


def test_missing_data_is_one_clear_error(tmp_path):
    done = cli(
        small_overrides(tmp_path / "empty", tmp_path / "runs") + ["dataset=mnist"],
        tmp_path,
        env={"ASYM_SWEEP_DATA": ""},
    )
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
    failed = result_of(runs, "l1-2000000000", "topk-k40")
    assert failed["status"] == "failed" and "allocate" in failed["error"]
    assert result_of(runs, "l1-32", "topk-k40")["status"] == "completed"


def test_nan_failure_writes_status_and_error(tiny_data, tmp_path):
    runs = tmp_path / "runs"
    done = cli(small_overrides(tiny_data, runs, method="dropout", **{"train.optim.lr": 1e30}), tmp_path)
    assert done.returncode == 1 and "TrainingDiverged" in done.stderr and "Traceback" not in done.stderr
    tag = f"dropout-p0.4{TINY}+lr1e30"
    result = result_of(runs, "l1-32", tag)
    assert result["status"] == "failed" and "nan" in result["error"]
    assert "Traceback" in (folder(runs, "l1-32", tag) / records.ERROR_FILE).read_text()
    # A failed run is redone on relaunch, not skipped.
    again = cli(small_overrides(tiny_data, runs, method="dropout", **{"train.optim.lr": 1e30}), tmp_path)
    assert "skipped" not in again.stderr and again.returncode == 1


def test_corrupt_result_and_checkpoint_are_redone(tiny_data, tmp_path):
    runs = tmp_path / "runs"
    assert cli(small_overrides(tiny_data, runs), tmp_path).returncode == 0
    run = folder(runs, "l1-32", "topk-k40")
    good = json.loads((run / records.RESULT_FILE).read_text())
    (run / records.RESULT_FILE).write_text('{"status": "completed", "fin')
    redo = cli(small_overrides(tiny_data, runs), tmp_path)
    assert redo.returncode == 0 and "unreadable" in redo.stderr and "done" in redo.stderr
    assert [h["val_acc"] for h in result_of(runs, "l1-32", "topk-k40")["history"]] == [
        h["val_acc"] for h in good["history"]
    ]
    (run / records.RESULT_FILE).unlink()
    (run / records.CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    redo = cli(small_overrides(tiny_data, runs), tmp_path)
    assert redo.returncode == 0 and "checkpoint.pt is unreadable" in redo.stderr and "from scratch" in redo.stderr


SLOW = {"arch": "l2-256", "train.epochs": 4, "train.batch_size": 10, "method": "partial"}
SLOW_TAG = f"partial-k1_40-k2_200-x_scope_sample{TINY.replace('+e1', '+e4')}+b10"


def start_slow_run(data: Path, runs: Path, cwd: Path, *extra: str, new_session: bool = False) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("ASYM_SWEEP_LAUNCH", None)
    flags = [a for a in extra if a.startswith("-")]  # Hydra wants --multirun before overrides
    extra = tuple(a for a in extra if not a.startswith("-"))
    # SIGINT as a terminal's child has it: a shell's background job (`cmd &`, as a CI runner may
    # start the tests) inherits it ignored, and Python then installs no KeyboardInterrupt handler.
    return subprocess.Popen(
        [sys.executable, "-m", "asym_sweep", *flags, *small_overrides(data, runs, **SLOW), *extra],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def stop_when(proc: subprocess.Popen, ready, what: str) -> None:
    """Freeze ``proc`` (SIGSTOP) as soon as ``ready()`` holds; no sleeping for a set time."""
    deadline = time.time() + 180
    while not ready():
        assert proc.poll() is None, f"the run ended before {what}: {proc.stderr.read()[-2000:]}"
        assert time.time() < deadline, f"no {what} after 180 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGSTOP)


def test_sigkill_mid_epoch_resumes_to_identical_numbers(tmp_path):
    data = make_idx_dataset(tmp_path / "data", "FashionMNIST", n_train=2050, n_test=100)
    killed = tmp_path / "killed/fashion_mnist/l2-256" / SLOW_TAG / "seed0"
    proc = start_slow_run(data, tmp_path / "killed", tmp_path)
    # Frozen right after its first checkpoint: mid-run, whatever the machine's speed.
    stop_when(proc, lambda: (killed / records.CHECKPOINT_FILE).exists(), "a checkpoint")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / records.RESULT_FILE).exists()
    assert records.load_checkpoint(killed)[1] is None  # the snapshot survived intact
    assert not [p for p in killed.iterdir() if p.name.endswith(".tmp")]
    # The kernel released the lock with the process: nothing stale blocks the relaunch.
    assert runlock.lock_holder(killed) is None

    resumed = cli(small_overrides(data, tmp_path / "killed", **SLOW), tmp_path)
    assert resumed.returncode == 0 and "resuming" in resumed.stderr, resumed.stderr
    straight = cli(small_overrides(data, tmp_path / "straight", **SLOW), tmp_path)
    assert straight.returncode == 0
    a = json.loads((killed / records.RESULT_FILE).read_text())
    b = json.loads((tmp_path / "straight/fashion_mnist/l2-256" / SLOW_TAG / "seed0" / records.RESULT_FILE).read_text())
    assert a["resumed_at_epochs"] and not b["resumed_at_epochs"]
    assert [{k: h[k] for k in METRICS} for h in a["history"]] == [{k: h[k] for k in METRICS} for h in b["history"]]
    assert a["final"] == b["final"]


def snapshot(run: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(run)): p.read_bytes()
        for p in sorted(run.rglob("*"))
        if p.is_file() and p.name != records.LOG_FILE
    }


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_a_second_launch_of_a_live_run_skips_it_and_touches_nothing(tmp_path, launcher):
    """Issue 15.2: both launches trained the run and the second overwrote the first's files."""
    data = make_idx_dataset(tmp_path / "data", "FashionMNIST", n_train=2050, n_test=100)
    runs = tmp_path / "runs"
    live = runs / "fashion_mnist/l2-256" / SLOW_TAG / "seed0"
    first = start_slow_run(data, runs, tmp_path)
    try:
        stop_when(first, lambda: (live / records.CHECKPOINT_FILE).exists(), "a checkpoint")
        before = snapshot(live)
        # The same run (threads differ, which does not change its identity), and for joblib beside a free one.
        extra = (
            ["--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1"]
            if launcher == "joblib"
            else []
        )
        second = cli(small_overrides(data, runs, **SLOW, threads=2) + extra, tmp_path)
        assert snapshot(live) == before, "the second launch changed the live run's files"
    finally:
        first.send_signal(signal.SIGCONT)
    assert f"in progress (pid {first.pid} on {socket.gethostname()}): skipped" in second.stderr, second.stderr[-3000:]
    assert second.returncode == 0
    if launcher == "joblib":
        assert "2 runs: 1 completed, 0 skipped, 0 failed, 0 invalid, 1 in progress" in second.stderr
    assert first.wait(timeout=300) == 0
    result = json.loads((live / records.RESULT_FILE).read_text())
    saved = OmegaConf.load(live / ".hydra" / "config.yaml")
    assert result["epochs"] == saved.train.epochs == 4 and saved.threads == 1 and result["environment"]["threads"] == 1
    assert runlock.lock_holder(live) is None


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_parallel_launchers_run_a_two_job_sweep(tiny_data, tmp_path, launcher):
    runs = tmp_path / "runs"
    extra = (
        ["hydra.launcher.n_jobs=2"]
        if launcher == "joblib"
        else ["hydra.launcher.timeout_min=5", "hydra.launcher.cpus_per_task=1"]
    )
    overrides = [o for o in small_overrides(tiny_data, runs) if not o.startswith("threads=")]
    done = cli(overrides + ["--multirun", f"hydra/launcher={launcher}", "seed=0,1"] + extra, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 runs: 2 completed" in done.stderr
    for seed in (0, 1):
        assert result_of(runs, "l1-32", "topk-k40", seed)["status"] == "completed"
    env = result_of(runs, "l1-32", "topk-k40", 0)["environment"]
    if launcher == "joblib":
        # threads=0: the job's share of the cores, lowered to what other work leaves free (recorded).
        assert env["jobs"] == 2
        assert env["threads"] == choose_threads(0, 2, env["cores"], env["thread_choice"]["other_busy"]).threads
    else:
        assert env["jobs"] == 1 and env["threads"] == 1  # hydra.launcher.cpus_per_task


def test_without_a_terminal_every_epoch_is_one_line_on_stderr_and_in_the_log(tiny_data, tmp_path):
    """Issue 15.4: `make run > log`, nohup and SLURM saw nothing while training."""
    runs = tmp_path / "runs"
    done = cli(small_overrides(tiny_data, runs, progress="auto", **{"train.epochs": 2}), tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if " epoch " in line]
    assert [line.split(": loss")[0].rsplit(" ", 1)[-1] for line in lines] == ["1/2", "2/2"]
    assert all("val acc" in line and "test acc" in line and "ETA" in line for line in lines)
    log = (folder(runs, "l1-32", "topk-k40+val50+e2") / records.LOG_FILE).read_text()
    assert all(line in log for line in lines) and "asym-sweep: done" in log


def test_on_a_terminal_the_bar_shows_an_eta_and_the_log_still_gets_the_epochs(tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    data = make_idx_dataset(tmp_path / "data", "FashionMNIST", n_train=2050, n_test=100)
    runs = tmp_path / "runs"
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # a terminal 160 columns wide
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("ASYM_SWEEP_LAUNCH", None)
    overrides = small_overrides(data, runs, progress="auto", **{**SLOW, "train.epochs": 2})
    proc = subprocess.Popen(
        [sys.executable, "-m", "asym_sweep", *overrides],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    assert proc.wait(timeout=300) == 0
    os.close(leader)
    text = shown.decode(errors="replace")
    assert "epoch 2/2" in text and "<" in text and "batch/s" in text  # tqdm: elapsed<remaining, rate
    assert ": loss" not in text  # no per-epoch lines on a terminal: the bar says it
    log = (runs / "fashion_mnist/l2-256" / SLOW_TAG.replace("+e4", "+e2") / "seed0" / records.LOG_FILE).read_text()
    assert "epoch 1/2: loss" in log and "epoch 2/2: loss" in log


@pytest.mark.parametrize("launch", ["run", "multirun", "joblib"])
def test_ctrl_c_says_how_to_resume_and_exits_130(tmp_path, launch):
    """Issue 15.5: Ctrl-C printed a 30-line traceback (60 in a multirun, with no summary)."""
    data = make_idx_dataset(tmp_path / "data", "FashionMNIST", n_train=2050, n_test=100)
    runs = tmp_path / "runs"
    live = runs / "fashion_mnist/l2-256" / SLOW_TAG / "seed0"
    extra = {
        "run": [],
        "multirun": ["--multirun", "seed=0,1"],
        "joblib": ["--multirun", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    }[launch]
    proc = start_slow_run(data, runs, tmp_path, *extra, new_session=True)
    stop_when(proc, lambda: (live / records.CHECKPOINT_FILE).exists(), "a checkpoint")
    # As a terminal's Ctrl-C does: SIGINT to the whole process group (joblib's workers too).
    os.killpg(proc.pid, signal.SIGINT)
    os.killpg(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert f"{live}: interrupted after epoch 1; run the same command again to resume" in err
    assert "runs: 0 completed" in err and "interrupted" in err.split("runs: 0 completed")[1]
    assert records.load_checkpoint(live)[1] is None and not (live / records.RESULT_FILE).exists()
    resumed = cli(small_overrides(data, runs, **SLOW), tmp_path)
    assert resumed.returncode == 0 and "resuming" in resumed.stderr


def test_exit_codes_of_the_launch(tiny_data, tmp_path):
    """0 ok, 1 a run failed, 2 bad input (Hydra's composition errors included, which exited 1)."""
    runs = tmp_path / "runs"
    assert cli(small_overrides(tiny_data, runs), tmp_path).returncode == 0
    assert cli(small_overrides(tiny_data, runs, method="dropout", **{"train.optim.lr": 1e30}), tmp_path).returncode == 1
    for bad in (["dataset=nope"], ["arch"], ["--multirun", "method=topk,nope"]):
        done = cli(small_overrides(tiny_data, runs) + bad, tmp_path)
        assert done.returncode == 2, (bad, done.stderr[-2000:])
