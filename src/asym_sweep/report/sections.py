"""The report's sections: the answer (first page), the summary, the readings page, one per architecture.

Each function turns `Frames` into one `page.Section`, writing its tables and figures through a
`Writer`; `build` orders them into the page.
"""

from __future__ import annotations

import pandas as pd

from asym_sweep import grid as thesis_grid
from asym_sweep.config import schema_settings
from asym_sweep.grid import ThesisGrid
from asym_sweep.report import fidelity, figures, quoted, tables
from asym_sweep.report import readings as rd
from asym_sweep.report import rules as rl
from asym_sweep.report import thesis as th
from asym_sweep.report.aggregate import EPOCH_WORDS
from asym_sweep.report.frames import Frames
from asym_sweep.report.page import Section
from asym_sweep.report.writer import Writer

COMPARISON_FIGURE = "comparison"  # ours against the thesis per cell: the page's one PNG (and the README's)


def coverage_lines(summary: pd.DataFrame, seeds: int, grid: ThesisGrid) -> list[str]:
    """How much of the thesis grid (its archs x its four methods x ``seeds``) the runs cover."""
    lines = []
    for dataset, archs in thesis_grid.ARCHS.items():
        cells = [(a, t) for a in archs for t in grid.tags.values()]
        have = (
            summary[summary["dataset"] == dataset].set_index(["arch", "method_tag"])["n_seeds"]
            if not summary.empty
            else pd.Series(dtype=int)
        )
        counts = [int(have.get(c, 0)) for c in cells]
        runs = sum(min(n, seeds) for n in counts)
        lines.append(
            f"{dataset}: {runs} of {len(cells) * seeds} runs of the thesis grid ({len(archs)} archs x 4 methods x "
            f"{seeds} seeds); "
            f"{sum(n > 0 for n in counts)} of {len(cells)} cells have a run, {sum(n >= 2 for n in counts)} have a CI "
            "(2+ seeds)"
        )
    return lines


def arch_order(frames: Frames) -> list[tuple[str, str]]:
    """The thesis' table order first, then any other (dataset, arch) we have runs for, by depth and width."""
    numbers = th.table_numbers(frames.reference)
    thesis = sorted(numbers, key=lambda k: float(numbers[k]["accuracy"].split(".", 1)[1]))
    ours = frames.summary[["dataset", "arch", "depth", "width"]].drop_duplicates()
    extra = [
        (d, a)
        for d, a, _, _ in sorted(ours.itertuples(index=False), key=lambda r: (r[0], r[2], r[3]))
        if (d, a) not in numbers
    ]
    return thesis + extra


def best_display(best: pd.DataFrame, grid: ThesisGrid) -> pd.DataFrame:
    def share(n: int, pct: float, total: int) -> str:
        return tables.MISSING if not total else f"{n} of {total} ({pct:.0f}%)"

    return pd.DataFrame(
        {
            "Method": [grid.label(t) for t in best["method_tag"]],
            "Best, ours": [share(r.ours_best, r.ours_best_pct, r.ours_archs) for r in best.itertuples()],
            "Best, thesis": [share(r.thesis_best, r.thesis_best_pct, r.thesis_archs) for r in best.itertuples()],
            "Worst, ours": [
                f"{r.ours_worst} of {r.ours_archs}" if r.ours_archs else tables.MISSING for r in best.itertuples()
            ],
            "Worst, thesis": [f"{r.thesis_worst} of {r.thesis_archs}" for r in best.itertuples()],
        }
    )


def reduction_display(reduction: pd.DataFrame, grid: ThesisGrid) -> pd.DataFrame:
    red = reduction[(reduction["archs"] > 0) | (reduction["sweep_archs"] > 0)]
    rank = {tag: i for i, tag in enumerate(grid.order(red["method_tag"]))}
    red = red.assign(_rank=red["method_tag"].map(rank)).sort_values(["dataset", "_rank"])
    return pd.DataFrame(
        {
            "Dataset": red["dataset"],
            "Method": [grid.label(t) for t in red["method_tag"]],
            "Archs (sweep)": red["sweep_archs"],
            "Backward / dropout, timing sweep (mean)": [tables.fmt_num(v, 3) for v in red["sweep_ratio_mean"]],
            "sweep (min–max)": [
                f"{a:.3f}–{b:.3f}" if a == a else tables.NONE
                for a, b in zip(red["sweep_ratio_min"], red["sweep_ratio_max"])
            ],
            "Archs (runs)": red["archs"],
            "20-epoch runs (mean)": [tables.fmt_num(v, 3) for v in red["ratio_mean"]],
            "runs (min–max)": [
                f"{a:.3f}–{b:.3f}" if a == a else tables.NONE for a, b in zip(red["ratio_min"], red["ratio_max"])
            ],
            "Thesis, same archs": [tables.fmt_num(v, 3) for v in red["thesis_on_shared"]],
            "Multiply-add ratio": [tables.fmt_num(v, 4) for v in red["flop_ratio_mean"]],
        }
    )


def pattern_display(p: pd.DataFrame, grid: ThesisGrid) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Method": [grid.label(t) for t in p["method_tag"]],
            "Archs": p["archs"],
            **{
                f"{name}: correlation with the thesis": [tables.fmt_num(v, 2) for v in p[f"{split}_corr"]]
                for split, name in (("val", "Validation"), ("test", "Test"))
            },
            **{
                f"{name} spread, ours / thesis (pts)": [
                    f"{a:.2f} / {b:.2f}" for a, b in zip(p[f"{split}_spread_ours"], p[f"{split}_spread_thesis"])
                ]
                for split, name in (("val", "Validation"), ("test", "Test"))
            },
        }
    )


def artefacts_display(a: pd.DataFrame, grid: ThesisGrid) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Method": [grid.label(t) for t in a["method_tag"]],
            "Validation - test gap, thesis / ours (pts)": [
                f"{x:+.2f} / {y:+.2f}" for x, y in zip(a["gap_thesis"], a["gap_ours"])
            ],
            "Spread over depth at a width, validation, thesis / ours (pts)": [
                f"{x:.2f} / {y:.2f}" for x, y in zip(a["depth_spread_val_thesis"], a["depth_spread_val_ours"])
            ],
            "test, thesis / ours (pts)": [
                f"{x:.2f} / {y:.2f}" for x, y in zip(a["depth_spread_test_thesis"], a["depth_spread_test_ours"])
            ],
            "Cells with the thesis' test CI under a third of ours": [
                f"{n} of {k}" for n, k in zip(a["narrow_ci_cells"], a["archs"])
            ],
        }
    )


def joint_display(t: pd.DataFrame, choice: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Option": t["option"],
            "Value": [f"{v} (chosen)" if v == choice else v for v in t["value"]],
            "Cells": t["cells"],
            "Runs": t["runs_of"],
            "Agree val / test": [f"{a} / {b} of {n}" for a, b, n in zip(t["agree_val"], t["agree_test"], t["of"])],
            "Mean |diff| val / test (pts)": [
                f"{100 * a:.2f} / {100 * b:.2f}" for a, b in zip(t["mean_abs_diff_val"], t["mean_abs_diff_test"])
            ],
            **{f"Off, {m} (pts)": [tables.fmt_num(100 * v, 2) for v in t[f"off_{m}"]] for m in thesis_grid.METHODS},
            "Off, all four (pts)": [tables.fmt_num(100 * v, 2) for v in t["off"]],
        }
    )


def thesis_time_lines(pattern: pd.DataFrame, grid: ThesisGrid) -> list[str]:
    """The thesis' own time tables, examined (`thesis.time_table_pattern`), in sentences."""
    lines = []
    for r in pattern[pattern["method"] != "dropout"].itertuples():
        lines.append(
            f"The thesis' time tables: {grid.label(grid.tags[r.method])} takes {r.most_common_ratio:.2f} of "
            "dropout's time "
            f"(to two decimals) on {int(r.archs_at_it)} of {int(r.archs)} architectures, "
            f"{r.ratio_min:.2f}-{r.ratio_max:.2f} on all, "
            f"while the share of sensitivities it keeps (k over the width) runs from {r.kept_share_max:.3f} to "
            f"{r.kept_share_min:.3f}."
        )
    d = pattern[pattern["method"] == "dropout"]
    if len(d) and d["dropout_line_r2_min"].notna().all():
        r = d.iloc[0]
        lines.append(
            "Its dropout times lie on a straight line in the width at every depth (R² at least "
            f"{r.dropout_line_r2_min:.4f}): "
            f"at depth {int(r.deepest)} they grow {r.time_growth:.1f}x from width {r.widths.replace('-', ' to ')}, "
            "while dense "
            f"backpropagation's multiply-adds grow {r.madds_growth:.0f}x. Times that follow the width and not the "
            "work, and "
            "ratios that do not move with k/n, are what a fixed cost per neuron or a timer around something other "
            "than the "
            "products would give; the thesis does not say what it timed. Our timing sweep's ratios fall with the "
            "width as "
            "the kept share does."
        )
    return lines


def sources_lines(runs: pd.DataFrame) -> list[str]:
    """Which runs the page reads: published and the user's, and the code revisions they came from."""
    lines = []
    for source, g in runs.groupby("source"):
        done = g[g["status"] == "completed"]
        commits = done["git_commit"].fillna("unrecorded").map(lambda c: c[:10]) + done["git_dirty"].map(
            lambda d: " (uncommitted changes)" if d is True else ""
        )
        by = ", ".join(f"{c}: {n}" for c, n in commits.value_counts().items())
        what = "published (results/)" if source == "published" else "yours"
        lines.append(f"{len(done)} completed runs {what}; by revision: {by or 'none'}.")
    return lines


def answer_section(frames: Frames, w: Writer, colors: dict[str, str]) -> Section:
    """The first page: does the thesis reproduce, claim by claim."""
    s = Section("answer", "Does it reproduce? The answer so far")
    for line in sources_lines(frames.collection.runs):
        s.add_text(line)
    agree = fidelity.agreement(frames.accuracy, frames.grid)
    for split, name in (("val", "validation"), ("test", "test")):
        k, n = agree[split]
        s.add_text(
            f"Cells of the thesis' Fashion-MNIST tables agreeing on {name} accuracy (|ours - thesis| <= 1 pt, or the "
            f"thesis' value inside our 95% CI): {k} of {n}" + (f" ({100 * k / n:.0f}%)." if n else ".")
        )
    where = frames.sweep.where if frames.sweep is not None else ""
    claims = fidelity.claims(frames.summary, frames.reference, frames.grid, frames.times, where)
    if claims:
        w.table(
            s,
            pd.DataFrame(
                [
                    {"Claim": c.text, "Where": c.source, "Verdict": c.verdict, "Ours": c.ours, "Thesis": c.thesis}
                    for c in claims
                ]
            ),
            "answer_claims",
            "The thesis' claims (abstract, 9.5-9.6, 10.1) against our numbers",
        )
    best = th.best_method_summary(frames.summary, frames.reference, frames.grid, "fashion_mnist")
    if best["ours_archs"].iloc[0]:
        w.table(
            s,
            best_display(best, frames.grid),
            "answer_best_method",
            f"Best method per architecture by mean test accuracy (thesis: {quoted.BEST_SHARES})",
        )
    reduction = reduction_display(frames.reduction, frames.grid)
    if not reduction.empty:
        w.table(
            s,
            reduction,
            "answer_backward_ratio",
            f"Backward time relative to symmetric dropout (thesis: {quoted.TOPK_TIME_RATIO})"
            + (
                f"; timing sweep: {frames.sweep.where}"
                if frames.sweep is not None
                else "; no timing sweep yet (make timing)"
            ),
        )
    pattern = th.time_table_pattern(frames.reference, frames.grid)
    if not pattern.empty:
        for line in thesis_time_lines(pattern, frames.grid):
            s.add_text(line)
    if frames.accuracy.dropna(subset=["test_acc_mean", "thesis_test"]).shape[0]:
        fig = figures.thesis_scatter(
            frames.accuracy[frames.accuracy["method_tag"].isin(frames.grid.tags.values())],
            colors,
            "Our mean accuracy against the thesis' values, per cell (Fashion-MNIST and MNIST tables)",
            frames.grid,
        )
        w.figure(s, fig, COMPARISON_FIGURE)
    off = fidelity.disagreements(frames.accuracy, frames.grid)
    if not off.empty:
        off = off.reindex(off["diff_pts"].abs().sort_values(ascending=False).index)
        w.table(
            s,
            off.assign(
                ours=off["ours"].map("{:.4f}".format),
                thesis=off["thesis"].map("{:.4f}".format),
                diff_pts=off["diff_pts"].map("{:+.2f}".format),
            ).rename(columns={"diff_pts": "diff (pts)"}),
            "answer_disagreements",
            "Where we disagree (cells with 2+ seeds), largest first, with what the thesis' own numbers show",
        )
    pattern = fidelity.pattern_table(frames.accuracy, frames.grid)
    if not pattern.empty:
        w.table(
            s,
            pattern_display(pattern, frames.grid),
            "answer_pattern",
            "The pattern across the 25 architectures: correlation of our mean accuracy with the thesis', and the "
            "spread of each",
        )
    artefacts = fidelity.artefacts_table(frames.accuracy, frames.grid)
    if not artefacts.empty:
        w.table(
            s,
            artefacts_display(artefacts, frames.grid),
            "answer_thesis_artefacts",
            "Features of the thesis' own tables that bear on the disagreements, ours beside them",
        )
    ruled = ruled_out(frames)
    if ruled:
        s.add_text(
            "Readings measured and ruled out on the readings panel (further from the thesis than the method's default "
            "by more than half a point, mean |diff| of validation and test): " + "; ".join(ruled) + "."
        )
    if not (frames.summary["dataset"] == "mnist").any():
        s.add_text(
            "MNIST (thesis Tables 9.1-9.2): its training images cannot be had on the machines this project runs on, so "
            "its table has no runs of ours. Where the data exist: python -m asym_sweep --multirun "
            "+experiment=thesis_mnist."
        )
    return s


def ruled_out(frames: Frames) -> list[str]:
    table = frames.readings
    if table.empty:
        return []
    return [
        f"{reading} ({100 * off:.2f} pts from the thesis on average, against its default's {100 * base:.2f})"
        for reading, off, base in rd.ruled_out(table, frames.grid)
    ]


def summary_section(frames: Frames, w: Writer, seeds: int, colors: dict[str, str]) -> Section:
    s = Section("summary", "Summary")
    coll = frames.collection
    for line in coverage_lines(frames.summary, seeds, frames.grid):
        s.add_text("Coverage, " + line)
    if coll.in_progress:
        s.add_text(f"{len(coll.in_progress)} run(s) in progress (checkpoint, no result yet) are not included.")
    for problem in coll.problems:
        s.add_text(problem, "problems")
    mixed = frames.summary[frames.summary["mixed_settings"]]
    for r in mixed.itertuples():
        s.add_text(
            f"{r.dataset} {r.arch} {r.method_tag}: its seeds were run with different settings; their CI pools them",
            "problems",
        )
    checked = frames.accuracy.dropna(subset=["thesis_test", "test_acc_lo"])
    inside = int(checked["val_thesis_inside"].eq(True).sum() + checked["test_thesis_inside"].eq(True).sum())
    s.add_text(
        f"The thesis' value lies inside our 95% CI in {inside} of {2 * len(checked)} accuracy cells that have one "
        "(validation and test, groups with 2+ seeds). CI = mean ± t(0.975, n−1)·s/√n; one seed shows 'n=1'."
    )
    for dataset in sorted(frames.summary["dataset"].unique()):
        best = th.best_method_summary(frames.summary, frames.reference, frames.grid, dataset)
        if best["thesis_archs"].iloc[0] < 2:
            continue
        w.table(
            s,
            best_display(best, frames.grid),
            f"summary_best_method_{dataset}",
            f"{dataset}: best method per architecture by mean test accuracy (thesis 10: {quoted.BEST_SHARES})",
        )
    reduction = reduction_display(frames.reduction, frames.grid)
    if reduction.empty:
        s.add_text(
            "Backward time relative to symmetric dropout: no ratio yet. A ratio needs a completed dropout run "
            "(the thesis' baseline) of the same architecture, and no architecture with runs has one.",
            "problems",
        )
    else:
        w.table(
            s,
            reduction,
            "summary_backward_ratio",
            "Backward time relative to symmetric dropout, per method (mean over architectures)",
        )
    for dataset, sub in frames.summary.groupby("dataset"):
        if sub[["depth", "width"]].drop_duplicates().shape[0] > 1:
            w.figure(
                s,
                figures.grid_heatmap(
                    sub, "test_acc_mean", f"{dataset}: mean test accuracy over depth x width", frames.grid
                ),
                f"heatmap_test_acc_{dataset}",
            )
            if sub["backward_ratio"].notna().any():
                w.figure(
                    s,
                    figures.grid_heatmap(
                        sub,
                        "backward_ratio",
                        f"{dataset}: backward time / dropout's over depth x width",
                        frames.grid,
                        fmt=".2f",
                        colorscale="RdYlGn_r",
                    ),
                    f"heatmap_backward_ratio_{dataset}",
                )
            else:
                s.add_text(
                    f"{dataset}: no heatmap of the backward-time ratio to dropout yet: it needs dropout runs of "
                    "the architectures the other methods ran on.",
                    "problems",
                )
    return s


def arch_section(frames: Frames, w: Writer, dataset: str, arch: str, colors: dict[str, str]) -> Section:
    numbers = th.table_numbers(frames.reference).get((dataset, arch), {})
    s = Section(f"{dataset}-{arch}", f"{dataset} {arch}")
    acc = frames.accuracy[(frames.accuracy["dataset"] == dataset) & (frames.accuracy["arch"] == arch)]
    times = frames.times[(frames.times["dataset"] == dataset) & (frames.times["arch"] == arch)]
    acc_title = f"Accuracy, {dataset} {arch}" + (
        f" (thesis Table {numbers['accuracy']})" if "accuracy" in numbers else ""
    )
    time_title = f"Backpropagation time, {dataset} {arch}" + (
        f" (thesis Table {numbers['time']})" if "time" in numbers else ""
    )
    w.table(s, tables.accuracy_table(acc, frames.grid), f"{dataset}_{arch}_accuracy", acc_title)
    for note in sorted(set(acc["note"].dropna()) - {""}):
        s.add_text(f"Thesis values: {note}.")
    w.table(s, tables.time_table(times, frames.grid), f"{dataset}_{arch}_time", time_title)
    have = acc[acc["n_seeds"] > 0]
    if len(have) and not set(frames.grid.time_baselines) & set(have["method_tag"]):
        s.add_text(
            "No ratio to dropout here: this architecture has no completed dropout run (the baseline) yet.", "problems"
        )
    curves = frames.curves[(frames.curves["dataset"] == dataset) & (frames.curves["arch"] == arch)]
    if curves.empty:
        s.add_text("No completed runs for this architecture yet: figures appear once there are.")
        return s
    w.figure(
        s,
        figures.accuracy_curves(
            curves, colors, f"{dataset} {arch}: accuracy per epoch (mean, 95% CI band)", frames.grid
        ),
        f"{dataset}_{arch}_accuracy",
    )
    w.figure(
        s,
        figures.backward_bars(times, colors, f"{dataset} {arch}: backpropagation time", frames.grid),
        f"{dataset}_{arch}_time",
    )
    return s


def readings_display(table: pd.DataFrame, epoch: str) -> pd.DataFrame:
    t = table[table["epoch"] == epoch].sort_values(
        ["method", "agree_test", "mean_abs_diff_test"], ascending=[True, False, True]
    )
    pts = lambda v: f"{100 * v:.2f}"  # noqa: E731
    return pd.DataFrame(
        {
            "Method": t["method"],
            "Reading (run tag)": t["reading"] + t["default"].map({True: " (default)", False: ""}),
            "Cells": t["cells"],
            "Seeds": t["seeds"],
            "Agree, val": [f"{a} of {c}" for a, c in zip(t["agree_val"], t["cells"])],
            "Agree, test": [f"{a} of {c}" for a, c in zip(t["agree_test"], t["cells"])],
            "Within 1 pt, val / test": [f"{a} / {b}" for a, b in zip(t["within_val"], t["within_test"])],
            "Mean |diff| val (pts)": t["mean_abs_diff_val"].map(pts),
            "Mean |diff| test (pts)": t["mean_abs_diff_test"].map(pts),
            "Mean diff test (pts)": t["mean_diff_test"].map(lambda v: f"{100 * v:+.2f}"),
        }
    )


def readings_section(frames: Frames, w: Writer) -> Section | None:
    """The readings page: agreement with the thesis per reading over the panel, and its claims."""
    table = frames.readings
    if table.empty or table["reading"].nunique() <= len(thesis_grid.METHODS):
        return None
    s = Section("readings", "Readings: which reading of the thesis' open points reproduces it")
    s.add_text(
        f"Over the readings panel ({', '.join(thesis_grid.PANEL)}; python -m asym_sweep --multirun "
        "+experiment=readings). "
        "A cell agrees when |ours - thesis| <= 1 point or the thesis' value lies inside our 95% CI. "
        "Each reading is one run tag; docs/methods.md says what each computes."
    )
    for epoch, what in EPOCH_WORDS.items():
        w.table(
            s,
            readings_display(table, epoch),
            f"readings_{epoch}",
            f"Agreement with the thesis per reading, reporting {what}",
        )
    # While the panel's later seeds run, its first seed already covers more cells: shown apart,
    # never merged with the 3-seed figures (a single seed has no CI; it agrees within 1 pt only).
    first = rd.reading_table(frames.collection.runs, frames.reference, frames.grid, seeds=1)
    first = first[first["epoch"] == "final"] if not first.empty else first
    if not first.empty and first["cells"].max() > table[table["epoch"] == "final"]["cells"].max():
        w.table(
            s,
            readings_display(first, "final"),
            "readings_first_seed",
            "The same on seed 0 alone (final epoch), over every cell where all of a method's readings have it: "
            "the panel's other seeds are not all in yet",
        )
    # Readings with every seed on every panel cell, on all six: the contenders, whose later seeds the
    # background sweep runs first, compared on the whole panel before the far-off readings finish.
    whole = rd.reading_table(frames.collection.runs, frames.reference, frames.grid, cells="panel")
    whole = whole[whole["epoch"] == "final"] if not whole.empty else whole
    if not whole.empty and rd.covers_more(whole, table[table["epoch"] == "final"]):
        w.table(
            s,
            readings_display(whole, "final"),
            "readings_whole_panel",
            f"The readings with all {thesis_grid.PANEL_SEEDS} seeds on every panel cell, over all "
            f"{len(thesis_grid.PANEL)} cells (final epoch): "
            "readings without every seed on every panel cell are left out",
        )
    for key, values in thesis_grid.EXPERIMENT_WIDE.items():
        joint = rd.joint_table(frames.collection.runs, frames.reference, frames.grid, key, values)
        if not joint.empty and joint["cells"].iloc[0] > 0:
            plain = str(schema_settings()[key])
            choice = rd.experiment_wide_choice(joint, plain)
            w.table(
                s,
                joint_display(joint, choice),
                f"readings_joint_{key.replace('.', '_')}",
                f"{key}, an option of the experiment: all four methods at each value, on the panel cells where all "
                "have "
                f"{thesis_grid.PANEL_SEEDS} seeds (the rule: {plain} unless another value is nearer the thesis over "
                "the four "
                f"methods by more than {100 * rd.MARGIN:.1f} pt)",
            )
    for label, choice in (
        ("today's defaults", {m: frames.grid.tags[m] for m in thesis_grid.METHODS}),
        ("the best-agreeing reading of each method", rd.best_readings(table, "final")),
    ):
        claims = rd.claims(frames.collection.runs, frames.reference, frames.grid, choice, "final")
        if not claims.empty:
            w.table(
                s,
                claims.rename(columns=str.capitalize),
                f"readings_claims_{'defaults' if 'default' in label else 'best'}",
                f"The thesis' claims on the panel with {label}: " + ", ".join(f"{m} {t}" for m, t in choice.items()),
            )
    return s


RULES_FIGURE = "rules"  # the rules experiment's accuracy against cost: a PNG too (the README's second image)


def rules_display(panel: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Rank": range(1, len(panel) + 1),
            "Method": panel["name"],
            "Run tag": panel["method_tag"],
            "Source": panel["source"],
            "Test accuracy over the ranked cells (95% CI)": [
                tables.fmt_ci(m, lo, hi, n)
                for m, lo, hi, n in zip(panel["test_mean"], panel["test_lo"], panel["test_hi"], panel["n_seeds"])
            ],
            "vs dropout (pts)": [tables.fmt_num(100 * v, 2, signed=True) for v in panel["gap_to_dropout"]],
            "Backward time / dropout's": [tables.fmt_num(v, 3) for v in panel["time_ratio"]],
            "Backward ms per step": [tables.fmt_num(v, 2) for v in panel["step_ms"]],
            "Backward FLOPs / dense": [tables.fmt_num(v, 3) for v in panel["flop_ratio"]],
            "Pareto front (time, FLOPs)": [
                ", ".join(w for w, on in (("time", a), ("FLOPs", b)) if on) or "no"
                for a, b in zip(panel["on_time_front"], panel["on_flop_front"])
            ],
        }
    )


def rules_cells_display(cells: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Cell": cells["arch"],
            "Method": cells["name"],
            "Test accuracy (95% CI)": [
                tables.fmt_ci(m, lo, hi, n)
                for m, lo, hi, n in zip(cells["test_mean"], cells["test_lo"], cells["test_hi"], cells["n_seeds"])
            ],
            "Backward time / dropout's": [tables.fmt_num(v, 3) for v in cells["time_ratio"]],
            "Backward FLOPs / dense": [tables.fmt_num(v, 3) for v in cells["flop_ratio"]],
            "Front (time, FLOPs)": [
                ", ".join(w for w, on in (("time", a), ("FLOPs", b)) if on) or "no"
                for a, b in zip(cells["on_time_front"], cells["on_flop_front"])
            ],
            "CPU": cells["cpus"],
        }
    )


def rules_claims_display(claims: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Source": claims["source"],
            "Its claim": claims["claim"],
            "Method": claims["method"],
            "vs dropout (pts)": [tables.fmt_num(v, 2, signed=True) for v in claims["gap_to_dropout_pts"]],
            "Backward time / dropout's": [tables.fmt_num(v, 3) for v in claims["time_ratio"]],
            "Backward FLOPs / dense": [tables.fmt_num(v, 3) for v in claims["flop_ratio"]],
            "On MLPs here": claims["verdict"],
        }
    )


def rules_section(frames: Frames, w: Writer) -> Section | None:
    """The rules page: every registered rule on the panel, accuracy against backward time and FLOPs."""
    cells, panel = frames.rules_cells, frames.rules_panel
    if cells is None or panel is None or not (~cells["name"].isin(thesis_grid.METHODS)).any():
        return None
    done, total = frames.rules_coverage
    s = Section("rules", "The rules: every registered rule on one protocol")
    s.add_text(
        "python -m asym_sweep --multirun +experiment=rules: every conf/method file (each registered rule at its "
        "source's "
        "defaults, and a second setting where the source names one) on the readings panel "
        f"({', '.join(thesis_grid.PANEL)}), "
        f"{thesis_grid.PANEL_SEEDS} seeds, 20 epochs, the grid's protocol, final epoch. {done} of {total} runs are in. "
        "Time: backward seconds per step over symmetric dropout's in the same cell (median over seeds; the "
        "geometric mean "
        "over the cells), from the 20-epoch runs, whose CPUs the per-cell table names. A method is on a Pareto "
        "front when "
        "no other is at most as costly and at least as accurate."
    )
    ranked = frames.rules_ranked_cells
    over = "the panel" if tuple(ranked) == tuple(thesis_grid.PANEL) else ", ".join(ranked)
    if len(panel):
        front = ", ".join(panel.loc[panel["on_time_front"], "name"])
        flop_front = ", ".join(panel.loc[panel["on_flop_front"], "name"])
        which = (
            "every seed on every cell"
            if over == "the panel"
            else f"the {len(ranked)} of {len(thesis_grid.PANEL)} panel cells every method has finished"
        )
        s.add_text(
            f"Over {over} ({len(panel)} methods, {which}): on the time front {front}; on the FLOP front {flop_front}."
        )
        w.figure(
            s,
            figures.rules_tradeoff(panel, f"Test accuracy against backward cost, over {over}", rl.COSTS),
            RULES_FIGURE,
        )
        w.table(s, rules_display(panel), "rules_ranking", f"The methods ranked by test accuracy over {over}")
        w.table(
            s,
            rules_claims_display(frames.rules_claims),
            "rules_claims",
            f"The sources' claims on MLPs, over {over} (accuracy: holds where the loss to dropout is at most "
            f"{100 * rl.LOSS:.1f} pt; cost: where the backward is faster than dropout's)",
        )
    else:
        s.add_text(
            "No method other than the thesis' has every seed on every panel cell yet: the per-cell table has what "
            "is in."
        )
    w.table(s, rules_cells_display(cells), "rules_cells", "Per panel cell")
    return s
