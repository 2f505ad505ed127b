"""Assemble the report: data files, tables, figures and ``index.html``, written atomically.

Everything is built in a temporary folder beside the output folder and moved
into place at the end, so an interrupted build leaves the previous report
intact and never a half-written one. The page's content comes from `sections`, its data from `frames`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import plotly.graph_objects as go

from asym_sweep.grid import GRID_SEEDS, ThesisGrid, load_grid
from asym_sweep.report import figures, snapshot, sweep_times
from asym_sweep.report.aggregate import EPOCH_WORDS
from asym_sweep.report.collect import collect
from asym_sweep.report.frames import Frames, compute
from asym_sweep.report.page import Section, render_page
from asym_sweep.report.sections import (
    COMPARISON_FIGURE,
    RULES_FIGURE,
    answer_section,
    arch_order,
    arch_section,
    coverage_lines,
    readings_section,
    rules_section,
    summary_section,
)
from asym_sweep.report.writer import Writer


class ReportError(RuntimeError):
    """The report cannot be built (one line: what is wrong and what to do)."""


@dataclass
class Report:
    out_dir: Path
    n_completed: int
    n_failed: int
    coverage: list[str]
    files: list[Path] = field(default_factory=list)
    static: str = ""


def export_static(figs: dict[str, go.Figure], folder: Path) -> str:
    """The comparison and rules figures as PNGs (`snapshot.write_png`); the others stay interactive HTML."""
    if COMPARISON_FIGURE not in figs:
        return "static export: no comparison figure yet (it needs runs of thesis cells)"
    written = []
    for name in (COMPARISON_FIGURE, RULES_FIGURE):
        if name in figs:
            problem = snapshot.write_png(figs[name], folder / f"{name}.png")
            if problem:
                return f"static export skipped: {problem}"
            written.append(f"figures/{name}.png")
    return f"static export: {', '.join(written)}"


def _replace_dir(staging: Path, out_dir: Path) -> None:
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    if out_dir.exists():
        out_dir.rename(old)
    staging.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


def build(
    runs_root: Path,
    out_dir: Path,
    seeds: int = GRID_SEEDS,
    static: bool = True,
    log: Callable[[str], None] = print,
    grid: ThesisGrid | None = None,
    epoch: str = "final",
    published: list[Path] | tuple[Path, ...] = (),
    timing: list[Path] | tuple[Path, ...] = (),
) -> Report:
    """The report of the published runs (``published``, e.g. ``results/``) and the user's (``runs_root``);
    the time claims from the newest timing sweep of the first of ``timing`` that has one."""
    roots = [r for r in (*published, runs_root) if r.is_dir()]
    if not roots:
        raise ReportError(f"no runs folder at {runs_root}; run a sweep first (python -m asym_sweep ...) or pass --runs")
    collection = collect(runs_root, published)
    if collection.runs.empty:
        extra = (
            f" ({len(collection.in_progress)} in progress, {len(collection.problems)} damaged)"
            if collection.in_progress or collection.problems
            else ""
        )
        where = " and ".join(map(str, roots))
        raise ReportError(
            f"no finished runs under {where}{extra}; run a sweep first (python -m asym_sweep ...) or pass --runs"
        )
    sweep = sweep_times.load(
        [(folder, "published" if any(folder.is_relative_to(p) for p in published) else "yours") for folder in timing]
    )
    frames = compute(collection, grid or load_grid(), epoch, sweep)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        report = _write(frames, staging, roots, seeds, static, log)
        _replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report.out_dir = out_dir
    report.files = [out_dir / p.relative_to(staging) for p in report.files]
    return report


def _write(
    frames: Frames, root: Path, roots: list[Path], seeds: int, static: bool, log: Callable[[str], None]
) -> Report:
    w = Writer(root)
    runs = frames.collection.runs
    data = Section("data", "Data files")
    data.add_links("one row per run", w.data("runs", runs, parquet=True))
    data.add_links("one row per run and epoch", w.data("epochs", frames.collection.epochs, parquet=True))
    data.add_links("per dataset, arch and method", w.data("summary", frames.summary, parquet=True))
    data.add_links(
        "comparisons with the thesis",
        w.data("comparison_accuracy", frames.accuracy) + w.data("comparison_time", frames.times),
    )
    if frames.sweep is not None:
        data.add_links(f"the timing sweep ({frames.sweep.where})", w.data("timing_sweep", frames.sweep.frame))
    if frames.rules_cells is not None and len(frames.rules_cells):
        data.add_links(
            "the rules experiment, per panel cell and over the panel",
            w.data("rules_cells", frames.rules_cells) + w.data("rules_panel", frames.rules_panel),
        )
    data.add_links("thesis values (Tables 9.1-9.52)", w.data("thesis_reference", frames.reference))
    colors = figures.method_colors(list(frames.summary["method_tag"]) + list(frames.grid.tags.values()), frames.grid)
    sections = [answer_section(frames, w, colors), summary_section(frames, w, seeds, colors)]
    readings = readings_section(frames, w)
    if readings is not None:
        sections.append(readings)
    rules = rules_section(frames, w)
    if rules is not None:
        sections.append(rules)
    order = arch_order(frames)
    with_runs = set(map(tuple, runs[["dataset", "arch"]].drop_duplicates().to_numpy()))
    for i, (dataset, arch) in enumerate(order, start=1):
        log(f"\rreport: section {i}/{len(order)} {dataset} {arch}\033[K")
        if (dataset, arch) in with_runs:
            sections.append(arch_section(frames, w, dataset, arch, colors))
    empty = [f"{d} {a}" for d, a in order if (d, a) not in with_runs]
    if empty:
        # One line, so that the sections with runs are not lost among empty ones.
        gone = Section("without-runs", f"Architectures without runs ({len(empty)})")
        gone.add_text(f"No runs yet for: {', '.join(empty)}. Their thesis values are in data/thesis_reference.csv.")
        sections.append(gone)
    sections.append(data)
    n_completed = int((runs["status"] == "completed").sum())
    n_failed = int((runs["status"] == "failed").sum())
    coverage = coverage_lines(frames.summary, seeds, frames.grid)
    # Every folder read: the published runs (results/) as well as the user's runs root.
    intro = [
        f"Runs read from {' and '.join(map(str, roots))}. {n_completed} completed runs, {n_failed} failed, "
        f"{len(frames.collection.in_progress)} in progress.",
        f"Accuracy: each run reports {EPOCH_WORDS[frames.epoch]}; the mean over seeds, with a Student-t 95% CI. "
        "Time: backward seconds per run and their ratio to "
        "symmetric dropout on the same architecture (absolute times from different machines do not compare)"
        + (
            f"; the time claims use the timing sweep ({frames.sweep.source}: {frames.sweep.where}), its methods "
            "timed in turns "
            "in one stretch, the 20-epoch runs' totals shown beside it."
            if frames.sweep is not None
            else "; no timing sweep found (make timing), so the time claims use the 20-epoch runs' totals."
        ),
    ]
    static_msg = export_static(w.figures, root / "figures") if static else "static PNG/SVG export not requested"
    index = root / "index.html"
    index.write_text(render_page("asym-sweep report: reproduction of Srivastava (2022)", intro, sections))
    w.files.append(index)
    return Report(root, n_completed, n_failed, coverage, w.files, static_msg)
