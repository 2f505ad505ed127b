"""The readings page: which reading of the thesis' open points reproduces its numbers, over the
readings panel (`grid.PANEL`, ``+experiment=readings``).

A *reading* is one run tag of a thesis method (``partial-k1_40-k2_200+b10``, ...). Per reading
and per way of reporting the epoch (`aggregate.EPOCH_MODES`), over the panel's cells:

* cells that agree with the thesis: ``|ours - thesis| <= 1 pt`` or the thesis' value inside our
  95% CI, for validation and for test accuracy, and the mean ``|ours - thesis|``;
* the thesis' qualitative claims on a *reading set* (one reading per method): the best method
  of each cell, complete sparsification worst, partial connectivity ahead of top-k where the
  width is 512-1024, and the backward-time ratio to dropout, ours beside the thesis'.
"""

from __future__ import annotations

import math

import pandas as pd

from asym_sweep.grid import BASELINE, METHODS, PANEL, PANEL_SEEDS, ThesisGrid
from asym_sweep.report.aggregate import EPOCH_MODES, summarize

AGREE = 0.01  # one point of accuracy
KEYS = ["dataset", "arch", "method"]


def thesis_accuracy(reference: pd.DataFrame) -> pd.DataFrame:
    ref = reference[reference["kind"] == "accuracy"]
    cols = {c: f"thesis_{c}" for c in ("val", "val_lo", "val_hi", "test", "test_lo", "test_hi")}
    return ref.rename(columns={**cols, "thesis_method": "method"})[["dataset", "arch", "method", *cols.values()]]


def thesis_time_ratio(reference: pd.DataFrame) -> pd.DataFrame:
    """The thesis' backward time of each method over its dropout's, per (dataset, arch)."""
    t = reference[reference["kind"] == "time"].rename(columns={"thesis_method": "method"})
    base = t[t["method"] == BASELINE].set_index(["dataset", "arch"])["backward_time"]
    t = t.assign(
        thesis_ratio=t["backward_time"].to_numpy()
        / base.reindex(pd.MultiIndex.from_frame(t[["dataset", "arch"]])).to_numpy()
    )
    return t[["dataset", "arch", "method", "thesis_ratio"]]


def compared(summary: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Every group of a thesis method beside the thesis' value of that method and cell."""
    t = summary[summary["method"].isin(METHODS) & (summary["n_seeds"] > 0)].merge(thesis_accuracy(reference), on=KEYS)
    for split in ("val", "test"):
        diff = t[f"{split}_acc_mean"] - t[f"thesis_{split}"]
        inside = (t[f"{split}_acc_lo"] <= t[f"thesis_{split}"]) & (t[f"thesis_{split}"] <= t[f"{split}_acc_hi"])
        t[f"{split}_diff"] = diff
        t[f"{split}_agree"] = (diff.abs() <= AGREE + 1e-12) | inside.fillna(False)
    return t


def panel_summary(
    runs: pd.DataFrame, grid: ThesisGrid, epoch: str, panel: tuple[str, ...] = PANEL, seeds: int = PANEL_SEEDS
) -> pd.DataFrame:
    """The panel's groups on its own seeds (0 to ``seeds`` - 1): the default readings, which are grid
    runs with 5 seeds, are compared on the same 3 seeds as the other readings."""
    on_panel = runs[(runs["dataset"] == "fashion_mnist") & runs["arch"].isin(panel) & (runs["seed"] < seeds)]
    return summarize(on_panel, grid.time_baselines, epoch) if len(on_panel) else pd.DataFrame()


def common_cells(t: pd.DataFrame, seeds: int) -> pd.DataFrame:
    """Only the cells where every reading of the method has ``seeds`` seeds: each method's
    readings are then compared on the same cells (a reading still running counts nowhere yet)."""
    keep = []
    for method, g in t.groupby("method"):
        readings = g["method_tag"].unique()
        full = g[g["n_seeds"] >= seeds].groupby("arch")["method_tag"].nunique()
        keep += [(method, arch) for arch, n in full.items() if n == len(readings)]
    return t[t.set_index(["method", "arch"]).index.isin(keep)]


def whole_panel(t: pd.DataFrame, seeds: int, panel: tuple[str, ...]) -> pd.DataFrame:
    """Only the readings with ``seeds`` seeds on every cell of the panel, on all of them: while the
    panel runs, the readings in contention can be compared on every cell before the others finish."""
    t = t[t["arch"].isin(panel) & (t["n_seeds"] >= seeds)]
    cells = t.groupby("method_tag")["arch"].nunique()
    return t[t["method_tag"].isin(cells[cells == len(panel)].index)]


# Which cells a reading table compares the readings on: `common_cells` or `whole_panel`.
CELL_CHOICES = ("common", "panel")


def reading_table(
    runs: pd.DataFrame,
    reference: pd.DataFrame,
    grid: ThesisGrid,
    panel: tuple[str, ...] = PANEL,
    seeds: int = PANEL_SEEDS,
    cells: str = "common",
) -> pd.DataFrame:
    """One row per (epoch mode, method, reading) with the panel's agreement figures, over the cells
    where all of the method's readings have ``seeds`` seeds (``cells="common"``, `common_cells`), or
    for the readings that have them on the whole panel (``"panel"``, `whole_panel`)."""
    if cells not in CELL_CHOICES:
        raise ValueError(f"cells must be one of {', '.join(CELL_CHOICES)}, got {cells!r}")
    rows = []
    for epoch in EPOCH_MODES:
        summary = panel_summary(runs, grid, epoch, panel, seeds)
        if summary.empty:
            continue
        t = compared(summary, reference)
        chosen = common_cells(t, seeds) if cells == "common" else whole_panel(t, seeds, panel)
        for (method, tag), g in chosen.groupby(["method", "method_tag"]):
            rows.append(
                {
                    "epoch": epoch,
                    "method": method,
                    "reading": tag,
                    "default": tag == grid.tags.get(method),
                    "cells": len(g),
                    "seeds": f"{int(g['n_seeds'].min())}-{int(g['n_seeds'].max())}",
                    "agree_val": int(g["val_agree"].sum()),
                    "agree_test": int(g["test_agree"].sum()),
                    "within_val": int((g["val_diff"].abs() <= AGREE + 1e-12).sum()),
                    "within_test": int((g["test_diff"].abs() <= AGREE + 1e-12).sum()),
                    "mean_abs_diff_val": float(g["val_diff"].abs().mean()),
                    "mean_abs_diff_test": float(g["test_diff"].abs().mean()),
                    "mean_diff_test": float(g["test_diff"].mean()),
                }
            )
    return pd.DataFrame(rows)


def covers_more(table: pd.DataFrame, than: pd.DataFrame) -> bool:
    """Whether ``table`` compares some method's readings on more cells than ``than`` does."""
    mine, theirs = table.groupby("method")["cells"].max(), than.groupby("method")["cells"].max()
    return bool((mine > theirs.reindex(mine.index).fillna(0)).any())


MARGIN = 0.005  # half a point: about 2.5 standard errors of a difference of two readings' means over the panel


def off_thesis(table: pd.DataFrame) -> pd.Series:
    """A reading's distance from the thesis: the mean |ours - thesis| of validation and test."""
    return (table["mean_abs_diff_val"] + table["mean_abs_diff_test"]) / 2


def best_readings(table: pd.DataFrame, epoch: str) -> dict[str, str]:
    """Per method, the reading nearest the thesis (`off_thesis`), among readings run on the most
    cells of their method. Counts of agreeing cells do not rank: on a few cells one seed moves
    them by one, and agreement by the CI alone holds anything for a reading whose seeds scatter
    (dropout 0.6 collapses some to chance on deep narrow nets)."""
    best = {}
    for method, g in table[table["epoch"] == epoch].groupby("method"):
        g = g[g["cells"] == g["cells"].max()]
        best[method] = g.assign(off=off_thesis(g)).sort_values("off").iloc[0]["reading"]
    return best


def ruled_out(table: pd.DataFrame, grid: ThesisGrid, epoch: str = "final") -> list[tuple[str, float, float]]:
    """(reading, its distance, the default's) for every reading further from the thesis than its
    method's default by more than `MARGIN`, on the same cells."""
    out = []
    for method, g in table[table["epoch"] == epoch].groupby("method"):
        g = g.assign(off=off_thesis(g)).set_index("reading")
        default = grid.tags.get(method)
        if default not in g.index:
            continue
        base = g.loc[default, "off"]
        out += [
            (reading, r["off"], base)
            for reading, r in g.iterrows()
            if r["off"] > base + MARGIN and r["cells"] == g.loc[default, "cells"]
        ]
    return out


def claims(
    runs: pd.DataFrame,
    reference: pd.DataFrame,
    grid: ThesisGrid,
    choice: dict[str, str],
    epoch: str,
    panel: tuple[str, ...] = PANEL,
) -> pd.DataFrame:
    """The thesis' qualitative claims on the panel, with one reading per method (``choice``)."""
    summary = panel_summary(runs, grid, epoch, panel)
    if summary.empty or set(choice) != set(METHODS):
        return pd.DataFrame()
    chosen = summary[summary.apply(lambda r: choice.get(r["method"]) == r["method_tag"], axis=1)]
    ours = chosen.pivot_table(index="arch", columns="method", values="test_acc_mean")
    ref = thesis_accuracy(reference)
    ref = ref[(ref["dataset"] == "fashion_mnist") & ref["arch"].isin(panel)].pivot_table(
        index="arch", columns="method", values="thesis_test"
    )
    cells = [a for a in panel if a in ours.index and ours.loc[a].reindex(list(METHODS)).notna().all()]
    rows = []
    if cells:
        o, t = ours.loc[cells, list(METHODS)], ref.loc[cells, list(METHODS)]
        best_o, best_t = o.idxmax(axis=1), t.idxmax(axis=1)
        rows.append(
            {
                "claim": "best method per cell (test)",
                "ours": ", ".join(f"{a}: {best_o[a]}" for a in cells),
                "thesis": ", ".join(f"{a}: {best_t[a]}" for a in cells),
                "agree": f"{int((best_o == best_t).sum())} of {len(cells)}",
            }
        )
        worst_o, worst_t = o.idxmin(axis=1), t.idxmin(axis=1)
        rows.append(
            {
                "claim": "complete sparsification worst",
                "ours": f"{int((worst_o == 'complete').sum())} of {len(cells)}",
                "thesis": f"{int((worst_t == 'complete').sum())} of {len(cells)}",
                "agree": f"{int((worst_o == worst_t).sum())} of {len(cells)}",
            }
        )
        wide = [a for a in cells if int(a.split("-")[1]) >= 512]
        if wide:
            ahead_o = [a for a in wide if o.loc[a, "partial"] > o.loc[a, "topk"]]
            ahead_t = [a for a in wide if t.loc[a, "partial"] > t.loc[a, "topk"]]
            rows.append(
                {
                    "claim": "partial ahead of top-k, width 512-1024",
                    "ours": ", ".join(ahead_o) or "none",
                    "thesis": ", ".join(ahead_t) or "none",
                    "agree": f"{sum((a in ahead_o) == (a in ahead_t) for a in wide)} of {len(wide)}",
                }
            )
    times = chosen.set_index(["arch", "method"])["backward_s_mean"]
    ratio_t = thesis_time_ratio(reference)
    ratio_t = ratio_t[(ratio_t["dataset"] == "fashion_mnist") & ratio_t["arch"].isin(panel)].set_index(
        ["arch", "method"]
    )["thesis_ratio"]
    for method in METHODS:
        if method == BASELINE:
            continue
        pairs = [
            (times[(a, method)] / times[(a, BASELINE)], ratio_t.get((a, method), math.nan))
            for a in panel
            if (a, method) in times.index and (a, BASELINE) in times.index
        ]
        if pairs:
            rows.append(
                {
                    "claim": f"backward time / dropout's, {method} (mean over cells)",
                    "ours": f"{sum(p[0] for p in pairs) / len(pairs):.3f}",
                    "thesis": f"{sum(p[1] for p in pairs) / len(pairs):.3f}",
                    "agree": f"{len(pairs)} cells",
                }
            )
    return pd.DataFrame(rows)


def joint_table(
    runs: pd.DataFrame,
    reference: pd.DataFrame,
    grid: ThesisGrid,
    key: str,
    values: tuple[str, ...],
    epoch: str = "final",
    panel: tuple[str, ...] = PANEL,
    seeds: int = PANEL_SEEDS,
) -> pd.DataFrame:
    """One row per value of an experiment-wide option (`grid.EXPERIMENT_WIDE`): the four methods'
    runs at that value (`ThesisGrid.tags_with`), compared with the thesis together on the panel
    cells where every one of them has ``seeds`` seeds. ``off`` is the mean over the four methods
    of `off_thesis`; ``off_<method>`` each method's."""
    summary = panel_summary(runs, grid, epoch, panel, seeds)
    if summary.empty:
        return pd.DataFrame()
    t = compared(summary, reference)
    sets = {value: grid.tags_with({key: value}) for value in values}
    chosen = {
        value: t[
            t.apply(lambda r, tags=tags: tags.get(r["method"]) == r["method_tag"], axis=1) & (t["n_seeds"] >= seeds)
        ]
        for value, tags in sets.items()
    }
    full = [a for a in panel if all((g["arch"] == a).sum() == len(METHODS) for g in chosen.values())]
    rows = []
    for value, g in chosen.items():
        g = g[g["arch"].isin(full)]
        row = {
            "option": key,
            "value": value,
            "cells": len(full),
            "runs_of": ", ".join(sets[value][m] for m in METHODS),
            "agree_val": int(g["val_agree"].sum()),
            "agree_test": int(g["test_agree"].sum()),
            "of": len(g),
            "mean_abs_diff_val": float(g["val_diff"].abs().mean()) if len(g) else math.nan,
            "mean_abs_diff_test": float(g["test_diff"].abs().mean()) if len(g) else math.nan,
        }
        for method in METHODS:
            m = g[g["method"] == method]
            row[f"off_{method}"] = (
                float((m["val_diff"].abs().mean() + m["test_diff"].abs().mean()) / 2) if len(m) else math.nan
            )
        row["off"] = (row["mean_abs_diff_val"] + row["mean_abs_diff_test"]) / 2
        rows.append(row)
    return pd.DataFrame(rows)


def experiment_wide_choice(table: pd.DataFrame, plain: str) -> str:
    """The value all methods take: ``plain`` (the schema's default, the reading the thesis' text
    implies) unless another is nearer the thesis over the four methods by more than `MARGIN`."""
    if table.empty or table["cells"].iloc[0] == 0:
        return plain
    off = table.set_index("value")["off"]
    best = off.idxmin()
    return best if plain not in off or off[best] < off[plain] - MARGIN else plain
