"""The timing sweep's record format (`asym_sweep.timing_sweep` writes it, the report reads it):
one JSON file per sweep, `TimingRecord`, one `Row` per (arch, method, round), and the one
reduction of rows to ratios both use (`ratio_table`). Torch-free, so the report stays light."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

FORMAT = "asym-sweep timing sweep 1"


@dataclass
class Row:
    """One method on one architecture in one round: medians over the round's steps (ms)."""

    arch: str
    method: str
    tag: str
    round: int
    position: int  # its place in the round's order
    forward_ms: float
    backward_ms: float
    select_ms: float
    optimizer_ms: float
    step_ms: float
    flop_ratio: float  # backward multiply-adds over dense backprop's on the same shapes


@dataclass
class TimingRecord:
    """The sweep's record: the machine, the plan, one `Row` per (arch, method, round)."""

    plan: dict[str, Any]
    machine: dict[str, Any]
    started_at: str
    finished_at: str = ""
    wall_s: float = 0.0
    other_busy_cores: float | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    format: str = FORMAT

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TimingRecord":
        if data.get("format") != FORMAT:
            raise ValueError(
                f"not a timing record of this version (format {data.get('format')!r}, expected {FORMAT!r})"
            )
        return cls(**data)


def ratio_table(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (arch, method): median backward ms over rounds, its ratio to dropout's (taken round by
    round) as the median with min-max over rounds, and the FLOP ratio."""
    by = {(r["arch"], r["method"], r["round"]): r for r in rows}
    out = []
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for arch in archs:
        for method in methods:
            mine = [r for (a, m, _), r in by.items() if a == arch and m == method]
            if not mine:
                continue
            ratios = [
                r["backward_ms"] / by[(arch, "dropout", r["round"])]["backward_ms"]
                for r in mine
                if (arch, "dropout", r["round"]) in by
            ]
            out.append(
                {
                    "arch": arch,
                    "method": method,
                    "tag": mine[0]["tag"],
                    "rounds": len(mine),
                    "backward_ms": statistics.median(r["backward_ms"] for r in mine),
                    "select_ms": statistics.median(r["select_ms"] for r in mine),
                    "step_ms": statistics.median(r["step_ms"] for r in mine),
                    "ratio": statistics.median(ratios) if ratios else float("nan"),
                    "ratio_min": min(ratios) if ratios else float("nan"),
                    "ratio_max": max(ratios) if ratios else float("nan"),
                    "flop_ratio": mine[0]["flop_ratio"],
                }
            )
    return out


def render(table: list[dict[str, Any]]) -> str:
    lines = [
        f"{'arch':8} {'method':9} {'backward ms':>11} {'/ dropout':>9} {'min-max over rounds':>20} {'FLOP ratio':>10}"
    ]
    for t in table:
        lines.append(
            f"{t['arch']:8} {t['method']:9} {t['backward_ms']:11.3f} {t['ratio']:9.3f} "
            f"{t['ratio_min']:9.3f}-{t['ratio_max']:<10.3f} {t['flop_ratio']:10.3f}"
        )
    return "\n".join(lines)


def read_records(folder: Path) -> list[tuple[Path, TimingRecord]]:
    """Every timing record in ``folder`` (oldest first by start time); a file that is not one is skipped."""
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found.append((path, TimingRecord.from_json(json.loads(path.read_text()))))
        except (ValueError, TypeError, json.JSONDecodeError):
            continue
    return sorted(found, key=lambda item: item[1].started_at)
