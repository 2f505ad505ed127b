"""``python -m asym_sweep.status`` (``make status``): a sweep's progress, from the run folders alone.

Every ``<runs>/<dataset>/<arch>/<method tag>/seed<N>/`` folder is classified as
completed (valid ``result.json``), failed (``result.json`` with status failed),
in progress (a checkpoint, no result), damaged (an unreadable result) or
empty. "missing" counts the cells of the thesis grid (Fashion-MNIST: 25
architectures; MNIST: l1-512; 4 methods; ``--seeds`` seeds) that have no
completed run.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from asym_sweep import records
from asym_sweep.config import THESIS_METHODS, method_from_conf
from asym_sweep.model import THESIS_ARCHS

THESIS_GRID_ARCHS = {"fashion_mnist": THESIS_ARCHS, "mnist": ("l1-512",)}
STATES = ("completed", "failed", "in progress", "damaged", "empty")


@dataclass(frozen=True)
class RunState:
    dataset: str
    arch: str
    tag: str
    seed: int
    state: str


def classify(run_dir: Path) -> str:
    result, problem = records.read_result(run_dir)
    if problem:
        return "damaged"
    if result is not None:
        return result["status"]
    if (run_dir / records.CHECKPOINT_FILE).is_file():
        return "in progress"
    return "empty"


def scan(runs_root: Path) -> list[RunState]:
    states = []
    for seed_dir in sorted(runs_root.glob("*/*/*/seed*")):
        if not seed_dir.is_dir() or not seed_dir.name[4:].isdigit():
            continue
        tag_dir = seed_dir.parent
        arch_dir = tag_dir.parent
        states.append(RunState(arch_dir.parent.name, arch_dir.name, tag_dir.name, int(seed_dir.name[4:]), classify(seed_dir)))
    return states


def thesis_grid(dataset: str, seeds: int) -> set[tuple[str, str, int]]:
    tags = [method_from_conf(name).tag() for name in THESIS_METHODS]
    return {(a, t, s) for a in THESIS_GRID_ARCHS.get(dataset, ()) for t in tags for s in range(seeds)}


def table(states: list[RunState], seeds: int) -> list[dict[str, object]]:
    """One row per (dataset, method tag) with the counts of every state and of missing grid cells."""
    rows = []
    datasets = sorted({s.dataset for s in states} | ({"fashion_mnist"} if not states else set()))
    for dataset in datasets:
        grid = thesis_grid(dataset, seeds)
        by_tag: dict[str, Counter] = defaultdict(Counter)
        done = set()
        for s in states:
            if s.dataset == dataset:
                by_tag[s.tag][s.state] += 1
                if s.state == "completed":
                    done.add((s.arch, s.tag, s.seed))
        for tag in sorted(set(by_tag) | {t for _, t, _ in grid}):
            cells = {c for c in grid if c[1] == tag}
            rows.append(
                {
                    "dataset": dataset,
                    "method": tag,
                    **{state: by_tag[tag][state] for state in STATES},
                    "missing": len(cells - done),
                    "grid": len(cells),
                }
            )
    return rows


def render(rows: list[dict[str, object]]) -> str:
    columns = ["dataset", "method", *STATES, "missing", "grid"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Progress of asym-sweep runs, from the run folders.")
    parser.add_argument("--runs", default="outputs/runs", help="runs root (default: outputs/runs)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per cell of the thesis grid (default: 5)")
    args = parser.parse_args(argv)
    root = Path(args.runs)
    if not root.is_dir():
        print(f"asym-sweep: error: no runs folder at {root}; run a sweep first or pass --runs", file=sys.stderr)
        return 2
    states = scan(root)
    print(f"{len(states)} run folders under {root}")
    print(render(table(states, args.seeds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
