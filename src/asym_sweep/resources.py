"""What the machine gives a run: its cores, how busy the other processes keep them, and so
how many torch threads a job should use.

Why measure instead of assuming ``cores / jobs``: two busy processes on two cores slowed a
2-thread torch run by 5-22x (OpenMP threads waiting on a core that another process holds),
while a 1-thread run beside the same busy loop lost about 10% (docs/performance.md). So a run
left to choose (``threads=0``) takes at most the cores the other processes leave free, and
the sweep's default on a small machine is one thread per job (``scripts/bench_threads.py``).

`LoadMeter` records, for the report, how much of the machine the *other* processes used
while a run trained: a timing taken beside other work is flagged rather than trusted.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from dataclasses import dataclass

PROC_STAT = "/proc/stat"
PROC_CPUINFO = "/proc/cpuinfo"
# A sample this long tells an idle core from a busy one (a busy core accrues ~25 ticks at 100 Hz).
SAMPLE_S = 0.25


def cpuinfo_field(name: str, cpuinfo: str = PROC_CPUINFO) -> str | None:
    """The first value of ``name`` in ``/proc/cpuinfo`` (``model name``, ``vendor_id``), None
    where it cannot be read."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name and value.strip():
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_model(cpuinfo: str = PROC_CPUINFO) -> str | None:
    """The processor's model name (``/proc/cpuinfo``), None where it cannot be read."""
    return cpuinfo_field("model name", cpuinfo)


def cpu_description(cpuinfo: str = PROC_CPUINFO) -> str:
    """``AMD EPYC, AVX2``: the model and the vector extension torch's CPU kernels use.

    Recorded with every run because a virtual machine's host can change under the same host
    name: this project's VM moved from an AVX-512 to an AVX2 host between two sessions and its
    steps became 1.5-2x slower, which only the vector extension told apart.
    """
    import torch  # the capability is torch's own choice of kernels

    model = cpu_model(cpuinfo) or platform.processor() or platform.machine() or "unknown CPU"
    return f"{model}, {torch.backends.cpu.get_cpu_capability()}"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _busy_seconds() -> float | None:
    """CPU seconds all processes spent busy since boot (every core), or None where unknown."""
    try:
        with open(PROC_STAT) as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class LoadMeter:
    """Cores kept busy by other processes between `start` and `read` (all threads of this one excluded)."""

    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        self._t = time.monotonic()
        self._busy = _busy_seconds()
        self._own = _own_seconds()

    def read(self) -> float | None:
        """Mean number of cores busy with other processes since `start` (None where unknown)."""
        busy, own, now = _busy_seconds(), _own_seconds(), time.monotonic()
        if busy is None or self._busy is None or now <= self._t:
            return None
        others = (busy - self._busy) - (own - self._own)
        return max(0.0, others / (now - self._t))


def other_busy_cores(sample_s: float = SAMPLE_S) -> float | None:
    """Cores busy with other processes right now, measured over ``sample_s`` seconds."""
    meter = LoadMeter()
    time.sleep(sample_s)
    return meter.read()


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


@dataclass(frozen=True)
class ThreadChoice:
    """The torch threads of one job and why."""

    threads: int
    jobs: int
    cores: int
    other_busy: float | None
    reason: str


def choose_threads(requested: int, jobs: int, cores: int, other_busy: float | None) -> ThreadChoice:
    """``requested`` if > 0; else the job's share of the cores (``cores // jobs``), lowered to the
    cores other processes leave free (rounded down, at least 1)."""
    if requested > 0:
        return ThreadChoice(requested, jobs, cores, other_busy, "set by threads=")
    share = max(1, cores // max(1, min(jobs, cores)))
    if other_busy is None:
        return ThreadChoice(share, jobs, cores, other_busy, f"{cores} cores / {jobs} job(s)")
    # Other jobs of the same launch are part of the load and already counted in `share`.
    free = max(1, round(cores - other_busy))
    if free < share:
        return ThreadChoice(free, jobs, cores, other_busy, f"{other_busy:.1f} of {cores} cores busy with other work")
    return ThreadChoice(share, jobs, cores, other_busy, f"{cores} cores / {jobs} job(s)")


# A run had fewer cores than threads when other processes kept this many more busy than the
# cores its threads left free. On a full machine that excess is what the run's threads lost: a
# 1-thread sweep job beside a test suite measured 1.44-1.47 other busy cores of 2 and ran 1.6x
# slower (l3-128 dropout epochs), unflagged at the former half-core slack; quiet 2-job sweeps
# measure 0.96-0.98. A quarter of a core flags a run slowed by about 1.3x or more.
LOAD_SLACK = 0.25


def under_load(other_busy: float | None, threads: int | None, cores: int | None) -> bool | None:
    """Whether a run's timing was taken beside work that took cores from it (None: not recorded).

    The other jobs of the run's own launch count as load: a sweep of one 1-thread job per core
    fills the machine exactly and is not under load; a test suite beside it is."""
    if other_busy is None or threads is None or cores is None:
        return None
    return other_busy + threads > cores + LOAD_SLACK
