"""The run lock (`asym_sweep.runlock`): one live launch per run folder (issue 15.2)."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import time

from asym_sweep import runlock


def test_a_held_run_lock_names_its_holder_and_is_released_cleanly(tmp_path):
    lock = runlock.RunLock(tmp_path)
    assert lock.acquire() is None
    holder = runlock.RunLock(tmp_path).acquire()
    assert holder is not None and holder.pid == os.getpid() and holder.host == socket.gethostname()
    seen = runlock.lock_holder(tmp_path)
    assert (seen.pid, seen.host) == (holder.pid, holder.host)
    lock.release()
    assert (tmp_path / runlock.LOCK_FILE).read_text() == ""  # a clean end names nobody
    assert runlock.lock_holder(tmp_path) is None
    again = runlock.RunLock(tmp_path)
    assert again.acquire() is None
    again.release()


def test_the_kernel_releases_the_lock_of_a_killed_holder(tmp_path):
    code = (
        f"from asym_sweep import runlock; import os, time; runlock.RunLock({str(tmp_path)!r}).acquire(); "
        "print('held', flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    assert runlock.lock_holder(tmp_path).pid == proc.pid
    proc.kill()
    proc.wait()
    assert runlock.lock_holder(tmp_path) is None  # the file still names it, the kernel knows better
    lock = runlock.RunLock(tmp_path)
    assert lock.acquire() is None
    lock.release()


def _write_holder(path, host, pid, age_s):
    path.write_text(json.dumps({"pid": pid, "host": host, "since": 0}))
    then = time.time() - age_s
    os.utime(path, (then, then))


def test_a_lock_file_of_another_host_with_a_fresh_heartbeat_is_respected(tmp_path):
    """On a filesystem whose flock is local to each machine (NFS local_lock, Lustre localflock),
    the granted flock proves nothing about a run on another host."""
    _write_holder(tmp_path / runlock.LOCK_FILE, "other-node", 4242, age_s=5)
    holder = runlock.RunLock(tmp_path).acquire()
    assert holder is not None and holder.host == "other-node"
    assert runlock.lock_holder(tmp_path).host == "other-node"
    _write_holder(tmp_path / runlock.LOCK_FILE, "other-node", 4242, age_s=runlock.STALE_S + 60)
    lock = runlock.RunLock(tmp_path)
    assert lock.acquire() is None  # a heartbeat that old: that run is dead
    lock.release()


def test_without_flock_an_exclusive_claim_file_is_the_lock(tmp_path, monkeypatch):
    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(runlock.fcntl, "flock", no_flock)
    lock = runlock.RunLock(tmp_path)
    assert lock.acquire() is None
    holder = runlock.RunLock(tmp_path).acquire()
    assert holder is not None and holder.pid == os.getpid()
    assert runlock.lock_holder(tmp_path).pid == os.getpid()
    lock.release()
    assert runlock.lock_holder(tmp_path) is None
    # A claim left by a dead process of this host is taken over.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    _write_holder(tmp_path / (runlock.LOCK_FILE + ".claim"), socket.gethostname(), int(dead), age_s=1)
    taker = runlock.RunLock(tmp_path)
    assert taker.acquire() is None
    taker.release()
