"""One live launch per run folder: the run lock, ``<run folder>/.lock`` (`RunLock`), and who
holds it (`lock_holder`, read by `records.classify` and ``make status``)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = ".lock"
# The holder refreshes the lock file's time this often, so that a holder on another machine can
# be told from one that died there (the only case where the kernel cannot say).
HEARTBEAT_S = 30.0
# A lock file naming another host whose heartbeat is older than this is taken to be left by a dead
# run. Far above HEARTBEAT_S, so a slow filesystem or a paused job is not mistaken for a dead one.
STALE_S = 600.0
# errno values of a filesystem that has no working flock (some NFS and FUSE mounts).
_NO_LOCKS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


@dataclass(frozen=True)
class Holder:
    """Who holds a run folder's lock, as its lock file says."""

    pid: int | None
    host: str | None
    age_s: float | None  # seconds since its last heartbeat

    def describe(self) -> str:
        return f"pid {self.pid if self.pid is not None else '?'} on {self.host or '?'}"


class RunLock:
    """An exclusive lock on one run folder, held while a launch trains in it.

    The lock is ``fcntl.flock`` on ``<run>/.lock``: the kernel releases it when the holder dies,
    however it dies (``kill -9`` included), so a killed run leaves no stale lock on a local disk.
    The holder writes its pid and host into the file, refreshes the file's time every
    `HEARTBEAT_S`, and empties it on a clean release.

    Shared filesystems. On NFS (v4, or v3 with lockd) ``flock`` is a real lock across machines;
    but a mount with ``local_lock=flock`` (NFS) or ``localflock`` (Lustre) grants it per machine
    only, silently, and some mounts refuse ``flock`` outright. So a lock that was granted is
    still refused when its file names *another* host whose heartbeat is fresh (younger than
    `STALE_S`): that run may be alive. Where ``flock`` is refused, the lock is the file itself,
    created exclusively (``O_EXCL``, atomic on NFS v3+), and taken over only from a dead pid of
    this host or a heartbeat older than `STALE_S`. The cost of this caution is that a run killed
    on another machine is skipped for up to `STALE_S` before a relaunch takes it over.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None
        self._flock = True
        self._stop: threading.Event | None = None

    # -- acquiring --------------------------------------------------------------------------

    def acquire(self) -> Holder | None:
        """Take the lock; None on success, else who holds it (nothing is changed then)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return read_holder(self.path) or Holder(None, None, None)
        except OSError as err:
            os.close(fd)
            if err.errno not in _NO_LOCKS:
                raise
            return self._acquire_without_flock()
        holder = read_holder(self.path)
        if holder is not None and holder.host != socket.gethostname() and _fresh(holder):
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            return holder
        self._fd = fd
        self._claim()
        return None

    def _acquire_without_flock(self) -> Holder | None:
        self._flock = False
        claim = self.path.with_name(LOCK_FILE + ".claim")
        for _ in range(2):
            try:
                self._fd = os.open(claim, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                holder = read_holder(claim) or Holder(None, None, None)
                if not _dead(holder):
                    return holder
                claim.unlink(missing_ok=True)  # left by a dead run: take it over
                continue
            self.path = claim
            self._claim()
            return None
        return read_holder(claim) or Holder(None, None, None)

    def _claim(self) -> None:
        assert self._fd is not None
        payload = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, payload, 0)
        os.fsync(self._fd)
        self._stop = threading.Event()
        threading.Thread(target=self._heartbeat, args=(self._stop,), daemon=True, name="run-lock-heartbeat").start()

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                pass

    # -- releasing --------------------------------------------------------------------------

    def release(self) -> None:
        if self._fd is None:
            return
        if self._stop is not None:
            self._stop.set()
        if self._flock:
            os.ftruncate(self._fd, 0)  # a clean end: nobody holds it now
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
        else:
            os.close(self._fd)
            self.path.unlink(missing_ok=True)
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_holder(path: Path) -> Holder | None:
    """The holder a lock file names, None when it names nobody (empty, absent, unreadable)."""
    try:
        text = path.read_text()
        age = time.time() - path.stat().st_mtime
    except OSError:
        return None
    try:
        data = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        return None
    pid = data.get("pid")
    return Holder(pid if isinstance(pid, int) else None, data.get("host"), age)


def _fresh(holder: Holder) -> bool:
    return holder.age_s is not None and holder.age_s < STALE_S


def _dead(holder: Holder) -> bool:
    """Known to be gone: a pid of this host that no longer exists, or a stale heartbeat."""
    if holder.host == socket.gethostname() and holder.pid is not None:
        try:
            os.kill(holder.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return not _fresh(holder)


def lock_holder(run_dir: Path) -> Holder | None:
    """Who is training in ``run_dir`` now (None: nobody), without taking the lock from anyone.

    A shared lock conflicts with a holder's exclusive one and is released at once; a launch that
    meets it in that instant retries (`acquire_run_lock`)."""
    path = Path(run_dir) / LOCK_FILE
    claim = path.with_name(LOCK_FILE + ".claim")
    if claim.exists():
        holder = read_holder(claim)
        return holder if holder is not None and not _dead(holder) else None
    if not path.exists():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(path) or Holder(None, None, None)
    except OSError:
        return None
    finally:
        os.close(fd)  # closing drops the shared lock
    holder = read_holder(path)
    if holder is not None and holder.host != socket.gethostname() and _fresh(holder):
        return holder
    return None


def acquire_run_lock(run_dir: Path, tries: int = 5, wait_s: float = 0.1) -> tuple[RunLock | None, Holder | None]:
    """``(lock, None)`` once this launch holds ``run_dir``, else ``(None, holder)``.

    Retries briefly, so that `lock_holder`'s momentary shared lock (``make status``) is not
    mistaken for a run in progress."""
    holder: Holder | None = None
    for attempt in range(tries):
        lock = RunLock(run_dir)
        holder = lock.acquire()
        if holder is None:
            return lock, None
        if holder.pid is not None:
            break  # a real holder wrote its name: no need to wait
        time.sleep(wait_s)
    return None, holder
