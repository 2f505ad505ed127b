from __future__ import annotations

import json

import pytest

from asym_sweep import records


def completed(**changes):
    base = {
        "schema_version": records.SCHEMA_VERSION,
        "status": "completed",
        "dataset": "fashion_mnist",
        "arch": "l1-64",
        "method": "topk",
        "seed": 0,
        "config": {},
        "epochs": 1,
        "history": [{"epoch": 1}],
        "final": {"val_acc": 0.8, "test_acc": 0.7},
        "timing": {"backward_s": 1.0},
        "flops": {},
    }
    base.update(changes)
    return base


def test_atomic_write_roundtrip_leaves_no_temp_files(tmp_path):
    records.write_json_atomic(tmp_path / records.RESULT_FILE, completed())
    data, problem = records.read_result(tmp_path)
    assert problem is None and data["final"]["val_acc"] == 0.8
    assert [p.name for p in tmp_path.iterdir()] == [records.RESULT_FILE]


@pytest.mark.parametrize(
    "text,reason",
    [
        ('{"status": "compl', "unreadable"),
        (json.dumps(completed(status="weird")), "unknown status"),
        (json.dumps(completed(history=[])), "0 epochs of history"),
        (json.dumps(completed(final={"val_acc": 7, "test_acc": 0.5})), "final.val_acc"),
        (json.dumps(completed(schema_version=99)), "schema_version"),
        ("[]", "not a JSON object"),
    ],
)
def test_damaged_results_are_reported_not_trusted(tmp_path, text, reason):
    (tmp_path / records.RESULT_FILE).write_text(text)
    data, problem = records.read_result(tmp_path)
    assert data is None and reason in problem


def test_checkpoint_damage_is_detected(tmp_path):
    records.save_checkpoint(tmp_path, {"some": "identity"}, 1, {"model": {}})
    assert records.load_checkpoint(tmp_path, ("model",))[1] is None
    assert "incomplete" in records.load_checkpoint(tmp_path, ("model", "optimizer"))[1]
    (tmp_path / records.CHECKPOINT_FILE).write_bytes(b"\x80garbage")
    assert "unreadable" in records.load_checkpoint(tmp_path)[1]
    assert records.load_checkpoint(tmp_path / "none") == (None, None)


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / records.RESULT_FILE
    records.write_json_atomic(path, completed())

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(records.os, "replace", boom)
    with pytest.raises(OSError):
        records.write_json_atomic(path, completed(seed=5))
    assert json.loads(path.read_text())["seed"] == 0
    assert [p.name for p in tmp_path.iterdir()] == [records.RESULT_FILE]


# --- run locks (issue 15.2) -------------------------------------------------------------------

import errno  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402


def test_a_held_run_lock_names_its_holder_and_is_released_cleanly(tmp_path):
    lock = records.RunLock(tmp_path)
    assert lock.acquire() is None
    holder = records.RunLock(tmp_path).acquire()
    assert holder is not None and holder.pid == os.getpid() and holder.host == socket.gethostname()
    seen = records.lock_holder(tmp_path)
    assert (seen.pid, seen.host) == (holder.pid, holder.host)
    lock.release()
    assert (tmp_path / records.LOCK_FILE).read_text() == ""  # a clean end names nobody
    assert records.lock_holder(tmp_path) is None
    again = records.RunLock(tmp_path)
    assert again.acquire() is None
    again.release()


def test_the_kernel_releases_the_lock_of_a_killed_holder(tmp_path):
    code = f"from asym_sweep import records; import os, time; records.RunLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(600)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    assert records.lock_holder(tmp_path).pid == proc.pid
    proc.kill()
    proc.wait()
    assert records.lock_holder(tmp_path) is None  # the file still names it, the kernel knows better
    lock = records.RunLock(tmp_path)
    assert lock.acquire() is None
    lock.release()


def _write_holder(path, host, pid, age_s):
    path.write_text(json.dumps({"pid": pid, "host": host, "since": 0}))
    then = time.time() - age_s
    os.utime(path, (then, then))


def test_a_lock_file_of_another_host_with_a_fresh_heartbeat_is_respected(tmp_path):
    """On a filesystem whose flock is local to each machine (NFS local_lock, Lustre localflock),
    the granted flock proves nothing about a run on another host."""
    _write_holder(tmp_path / records.LOCK_FILE, "other-node", 4242, age_s=5)
    holder = records.RunLock(tmp_path).acquire()
    assert holder is not None and holder.host == "other-node"
    assert records.lock_holder(tmp_path).host == "other-node"
    _write_holder(tmp_path / records.LOCK_FILE, "other-node", 4242, age_s=records.STALE_S + 60)
    lock = records.RunLock(tmp_path)
    assert lock.acquire() is None  # a heartbeat that old: that run is dead
    lock.release()


def test_without_flock_an_exclusive_claim_file_is_the_lock(tmp_path, monkeypatch):
    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(records.fcntl, "flock", no_flock)
    lock = records.RunLock(tmp_path)
    assert lock.acquire() is None
    holder = records.RunLock(tmp_path).acquire()
    assert holder is not None and holder.pid == os.getpid()
    assert records.lock_holder(tmp_path).pid == os.getpid()
    lock.release()
    assert records.lock_holder(tmp_path) is None
    # A claim left by a dead process of this host is taken over.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    _write_holder(tmp_path / (records.LOCK_FILE + ".claim"), socket.gethostname(), int(dead), age_s=1)
    taker = records.RunLock(tmp_path)
    assert taker.acquire() is None
    taker.release()
