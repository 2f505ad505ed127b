"""The timing sweep's answer in the report: backward-time ratios to dropout measured in one
stretch on one machine (`asym_sweep.timing_sweep`, ``make timing``).

The 20-epoch runs' totals stay in the time tables beside it, but the time claims are judged on
the sweep where there is one: its methods took turns step by step on one host, so its ratio to
dropout measures the method and not the hour or the host a run happened to get. The user's own
sweep (``outputs/timing``) is preferred to the published one (``results/timing``): a user who
re-runs it gets their machine's answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from asym_sweep.timing_records import TimingRecord, ratio_table, read_records

COLUMNS = {
    "backward_ms": "sweep_backward_ms",
    "select_ms": "sweep_select_ms",
    "ratio": "sweep_ratio",
    "ratio_min": "sweep_ratio_min",
    "ratio_max": "sweep_ratio_max",
    "flop_ratio": "sweep_flop_ratio",
}


@dataclass(frozen=True)
class SweepTimes:
    """One timing sweep's ratios, per (dataset, arch, method_tag), and where they were measured."""

    frame: pd.DataFrame
    where: str  # host, CPU, threads, date and revision, in words
    source: str  # "yours" or "published"
    path: Path


def dataset_of(record: TimingRecord) -> str:
    """The dataset the sweep's jobs were composed with (fashion_mnist unless an override says otherwise)."""
    chosen = [o.split("=", 1)[1] for o in record.plan.get("overrides", []) if o.startswith(("dataset=", "+dataset="))]
    return chosen[-1] if chosen else "fashion_mnist"


def describe(record: TimingRecord) -> str:
    m = record.machine
    commit = (m.get("git_commit") or "unrecorded")[:10] + (" (uncommitted changes)" if m.get("git_dirty") else "")
    return (
        f"{m.get('host')} ({m.get('cpu')}), {m.get('threads')} thread(s), {record.started_at[:16].replace('T', ' ')} "
        "UTC, "
        f"revision {commit}, {record.plan.get('rounds')} rounds x {record.plan.get('steps')} steps"
    )


def frame(record: TimingRecord) -> pd.DataFrame:
    table = pd.DataFrame(ratio_table(record.rows))
    if table.empty:
        return pd.DataFrame(columns=["dataset", "arch", "method_tag", *COLUMNS.values()])
    table = table.rename(columns={"tag": "method_tag", **COLUMNS}).assign(dataset=dataset_of(record))
    return table[["dataset", "arch", "method_tag", *COLUMNS.values()]]


def load(folders: Sequence[tuple[Path, str]]) -> SweepTimes | None:
    """The newest record of the first folder that holds one (``(folder, source)`` in order of preference)."""
    for folder, source in folders:
        found = read_records(folder)
        if found:
            path, record = found[-1]
            return SweepTimes(frame(record), describe(record), source, path)
    return None
