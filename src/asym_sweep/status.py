"""``python -m asym_sweep.status`` (``make status``): a sweep's progress, from the run folders alone.

Every ``<runs>/<dataset>/<arch>/<run tag>/seed<N>/`` folder is in one state (`records.classify`):

* ``completed``: a valid ``result.json`` with status completed;
* ``running``: another launch holds the folder's lock (`runlock.lock_holder`);
* ``interrupted``: a checkpoint and nobody holding the lock (the process died: resumable);
* ``failed``: ``result.json`` with status failed; ``damaged``: an unreadable result;
* ``empty``: nothing of a run yet.

A cell of the thesis grid (Fashion-MNIST: 25 architectures; MNIST: l1-512; 4 methods;
``--seeds`` seeds) counts a run only if the run has the grid's settings: its saved config's
run tag (`records.run_tag`: method tag and settings tag) is the folder's, and that is a thesis
method's grid tag (`grid.ThesisGrid.tags`, which carries any setting a method file fixes).
Its count goes to one state; ``missing`` is the rest, so the states of a method add up to its
grid. Runs of any other settings are listed apart, under "other settings".
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from asym_sweep import paths, records
from asym_sweep.grid import GRID_SEEDS, ThesisGrid, load_grid

STATES = records.STATES


@dataclass(frozen=True)
class RunState:
    dataset: str
    arch: str
    tag: str
    seed: int
    state: str
    grid_settings: bool  # the saved config's run tag is the folder's (its settings are the tag's)
    wall_s: float = 0.0  # a completed run's wall seconds (all its segments)
    jobs: int = 1  # runs its launch made at once


def scan(runs_root: Path) -> list[RunState]:
    states = []
    for folder in records.run_folders(runs_root):
        state, result, _ = records.classify(folder)
        key = records.folder_key(folder)
        grid_settings = state != "completed" or records.run_tag(result.config) == key[2]
        # records older than environment.jobs count as one job at a time
        wall, jobs = (result.timing.wall_s, result.environment.jobs or 1) if state == "completed" else (0.0, 1)
        states.append(RunState(*key, state, grid_settings, float(wall), int(jobs)))
    return states


def _cell_state(states: list[str]) -> str:
    return min(states, key=STATES.index)  # a cell shows the first state of its folders


def in_grid(states: list[RunState], seeds: int, grid: ThesisGrid) -> list[RunState]:
    """The folders that are runs of the thesis grid: a grid cell's tag, arch and seed, the grid's settings."""
    cells = {d: grid.cells(d, seeds) for d in {s.dataset for s in states}}
    return [s for s in states if (s.arch, s.tag, s.seed) in cells[s.dataset] and s.grid_settings]


def table(states: list[RunState], seeds: int, grid: ThesisGrid | None = None) -> list[dict[str, object]]:
    """One row per (dataset, thesis method): how many grid cells are in each state, and missing."""
    thesis = grid or load_grid()
    rows = []
    datasets = sorted({s.dataset for s in states} | {"fashion_mnist"})
    for dataset in datasets:
        grid_cells = thesis.cells(dataset, seeds)
        if not grid_cells:
            continue
        per_cell: dict[tuple[str, str, int], list[str]] = defaultdict(list)
        for s in in_grid(states, seeds, thesis):
            if s.dataset == dataset and s.state != "empty":
                per_cell[(s.arch, s.tag, s.seed)].append(s.state)
        for name in thesis.specs:
            tag = thesis.tags[name]
            cells = [c for c in grid_cells if c[1] == tag]
            counts = Counter(_cell_state(per_cell[c]) for c in cells if per_cell[c])
            row: dict[str, object] = {"dataset": dataset, "method": tag}
            row.update({state: counts.get(state, 0) for state in STATES if state != "empty"})
            row["missing"] = len(cells) - sum(counts.values())
            row["grid"] = len(cells)
            rows.append(row)
    return rows


def other_settings(states: list[RunState], seeds: int, grid: ThesisGrid | None = None) -> list[dict[str, object]]:
    """Folders outside the thesis grid (other tags, settings, archs or seeds), by (dataset, arch, tag)."""
    on_grid = set(in_grid(states, seeds, grid or load_grid()))
    groups: dict[tuple[str, str, str], Counter] = defaultdict(Counter)
    for s in states:
        if s not in on_grid:
            groups[(s.dataset, s.arch, s.tag)][s.state] += 1
    return [
        {"dataset": d, "arch": a, "run tag": t, **{state: c.get(state, 0) for state in STATES}}
        for (d, a, t), c in sorted(groups.items())
    ]


def machine_hours(states: list[RunState]) -> tuple[float, float]:
    """(run hours, machine hours) of the completed runs: the sum of their wall times, and that sum
    with each run divided by the jobs its launch ran at once (two 1-thread jobs share the machine)."""
    done = [s for s in states if s.state == "completed"]
    return sum(s.wall_s for s in done) / 3600, sum(s.wall_s / max(1, s.jobs) for s in done) / 3600


def render(rows: list[dict[str, object]]) -> str:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Progress of asym-sweep runs, from the run folders.")
    parser.add_argument("--runs", default=paths.RUNS, help=f"runs root (default: {paths.RUNS})")
    parser.add_argument(
        "--seeds", type=int, default=GRID_SEEDS, help=f"seeds per cell of the thesis grid (default: {GRID_SEEDS})"
    )
    args = parser.parse_args(argv)
    root = Path(args.runs)
    if not root.is_dir():
        print(f"asym-sweep: error: no runs folder at {root}; run a sweep first or pass --runs", file=sys.stderr)
        return 2
    if args.seeds < 1:
        print("asym-sweep: error: --seeds must be at least 1", file=sys.stderr)
        return 2
    states = scan(root)
    grid = load_grid()
    rows = table(states, args.seeds, grid)
    done = sum(int(r["completed"]) for r in rows)
    total = sum(int(r["grid"]) for r in rows)
    print(f"{len(states)} run folders under {root}; thesis grid: {done} of {total} runs completed")
    grid_runs, grid_machine = machine_hours(in_grid(states, args.seeds, grid))
    all_runs, all_machine = machine_hours(states)
    print(
        f"machine time of the completed runs: grid {grid_machine:.1f} h ({grid_runs:.1f} h of run time), "
        f"all {all_machine:.1f} h ({all_runs:.1f} h); a run's share is its wall time over the jobs run at once"
    )
    print(render(rows))
    others = other_settings(states, args.seeds, grid)
    if others:
        print(f"\nother settings ({len(others)} groups, not counted in the grid):")
        print(render(others))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `make status | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
