"""The rules page: every registered rule on one protocol (``+experiment=rules``), accuracy against
backward cost, the Pareto front, and what it says of each source's claim.

The protocol is the grid's (Fashion-MNIST, 20 epochs, batch 50) on the readings panel's cells
(`grid.PANEL`), seeds 0-2. Per cell and method:

* test accuracy, mean over seeds with a Student-t 95% CI (`stats.mean_ci`);
* backward time per training step (median over seeds of ``backward_s / steps``) and its ratio to
  symmetric dropout's in the same cell: the ratio, because absolute seconds from different
  machines do not compare (the timing sweep times the thesis' four only);
* the analytical backward multiply-add ratio to dense backprop (``flops.ratio_to_dense``).

Over the ranked cells (`ranked_cells`: the panel cells every method has finished, so that every
method is ranked on the same cells; while no cell is finished by all, the whole panel and the
methods that have it all): per seed the mean test accuracy over the cells, then its mean and CI
over the seeds; the geometric mean of the per-cell time and FLOP
ratios (ratios multiply). A method is on a front when no other method is at most as costly and at
least as accurate, one of the two strictly.
"""

from __future__ import annotations

import math

import pandas as pd

from asym_sweep.engine.rule import RULES
from asym_sweep.grid import BASELINE, METHODS, PANEL, PANEL_SEEDS, ThesisGrid
from asym_sweep.report.stats import mean_ci

# The source of a rule, by the module of `rules/` that registers it (one module per source).
SOURCES = {"thesis": "Srivastava 2022", "meprop": "meProp variants", "swat": "SWAT", "vrpge": "VR-PGE"}
COSTS = {"time_ratio": "backward time / dropout's", "flop_ratio": "backward FLOPs / dense"}
# The sources' claims the page tests, each on the methods (conf/method names) it concerns:
# (source, its claim, the methods, what measures it). "accuracy" holds where the methods lose at
# most `LOSS` to dropout over the panel; "cost" where their backward is faster than dropout's.
LOSS = 0.005  # half a point: the largest loss SWAT calls "almost zero" is 0.57% (its section 4)
CLAIMS = (
    ("SWAT", "up to 70% sparsity with almost zero accuracy loss (section 4)", ("swat", "saw"), "accuracy"),
    ("SWAT", "at 80% sparsity a loss under 1.8% (SAW) and 2.5% (SWAT) (section 4)", ("swat_80", "saw_80"), "accuracy"),
    (
        "meProp variants",
        "k a few percent of the width keeps accuracy (Fig. 4: 0.0225-0.034)",
        ("topk_fraction", "topk_fraction_0225"),
        "accuracy",
    ),
    ("VR-PGE", "the sub-network's products cost about rho^2 of the dense ones (C.1)", ("vrpge", "vrpge_25"), "cost"),
)


def source_of(rule: str) -> str:
    module = RULES[rule].__module__.rsplit(".", 1)[-1] if rule in RULES else ""
    return SOURCES.get(module, module or "?")


def _panel_runs(runs: pd.DataFrame, tags: dict[str, str]) -> pd.DataFrame:
    if runs.empty:
        return runs
    done = runs[
        (runs["status"] == "completed")
        & (runs["dataset"] == "fashion_mnist")
        & runs["arch"].isin(PANEL)
        & (runs["seed"] < PANEL_SEEDS)
        & runs["method_tag"].isin(tags.values())
    ]
    name = {tag: method for method, tag in tags.items()}
    return done.assign(
        name=done["method_tag"].map(name), step_ms=1e3 * done["backward_s"].astype(float) / done["steps"].astype(float)
    )


def cell_table(runs: pd.DataFrame, rules: ThesisGrid) -> pd.DataFrame:
    """One row per (panel cell, rules-experiment method) with a completed run."""
    done = _panel_runs(runs, rules.tags)
    rows = []
    for (arch, name), g in done.groupby(["arch", "name"], sort=False):
        mean, lo, hi, n = mean_ci(g["test_acc"])
        rows.append(
            {
                "arch": arch,
                "name": name,
                "method_tag": rules.tags[name],
                "rule": rules.specs[name].rule,
                "n_seeds": n,
                "test_mean": mean,
                "test_lo": lo,
                "test_hi": hi,
                "step_ms": g["step_ms"].median(),
                "flop_ratio": g["flop_ratio"].astype(float).mean(),
                "cpus": " / ".join(sorted({str(c) for c in g["cpu"].dropna()})),
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "arch",
            "name",
            "method_tag",
            "rule",
            "n_seeds",
            "test_mean",
            "test_lo",
            "test_hi",
            "step_ms",
            "flop_ratio",
            "cpus",
        ],
    )
    base = table[table["name"] == BASELINE].set_index("arch")["step_ms"]
    table["time_ratio"] = table["step_ms"] / table["arch"].map(base)
    table["on_time_front"] = False
    table["on_flop_front"] = False
    for _, idx in table.groupby("arch").groups.items():
        cell = table.loc[idx]
        table.loc[idx, "on_time_front"] = front(cell, "time_ratio", "test_mean")
        table.loc[idx, "on_flop_front"] = front(cell, "flop_ratio", "test_mean")
    order = {a: i for i, a in enumerate(PANEL)}
    return table.sort_values(
        ["arch", "test_mean"], key=lambda c: c.map(order) if c.name == "arch" else -c, ignore_index=True
    )


def front(frame: pd.DataFrame, cost: str, value: str) -> pd.Series:
    """True where no other row is at most as costly and at least as good, one of them strictly
    (rows without a cost are never on it)."""
    ok = frame[cost].notna() & frame[value].notna()
    out = pd.Series(False, index=frame.index)
    for i in frame.index[ok]:
        c, v = frame.at[i, cost], frame.at[i, value]
        others = frame[ok & (frame.index != i)]
        dominated = ((others[cost] <= c) & (others[value] >= v) & ((others[cost] < c) | (others[value] > v))).any()
        out[i] = not dominated
    return out


def _geomean(values: pd.Series) -> float:
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v)) and v > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else math.nan


def ranked_cells(runs: pd.DataFrame, rules: ThesisGrid) -> tuple[str, ...]:
    """The panel cells on which every method has all its seeds, in the panel's order; the whole
    panel while there is none."""
    done = _panel_runs(runs, rules.tags)
    seeds = done.drop_duplicates(["arch", "name", "seed"]).groupby(["arch", "name"]).size()
    finished = tuple(arch for arch in PANEL if all(seeds.get((arch, name), 0) >= PANEL_SEEDS for name in rules.tags))
    return finished or PANEL


def panel_table(runs: pd.DataFrame, rules: ThesisGrid, over: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One row per method with all seeds on every cell of ``over`` (default `ranked_cells`):
    accuracy over them with its CI, the gap to dropout, the cost ratios, the fronts; ranked by
    accuracy."""
    over = ranked_cells(runs, rules) if over is None else over
    done = _panel_runs(runs, rules.tags)
    done = done[done["arch"].isin(over)]
    cells = cell_table(runs, rules)
    cells = cells[cells["arch"].isin(over)]
    rows = []
    for name, g in done.groupby("name", sort=False):
        if g["arch"].nunique() < len(over) or g.groupby("arch")["seed"].nunique().min() < PANEL_SEEDS:
            continue
        per_seed = g.groupby("seed")["test_acc"].mean()  # each seed's mean over the ranked cells
        mean, lo, hi, n = mean_ci(per_seed)
        c = cells[cells["name"] == name]
        rows.append(
            {
                "name": name,
                "method_tag": rules.tags[name],
                "rule": rules.specs[name].rule,
                "source": source_of(rules.specs[name].rule),
                "thesis_method": name in METHODS,
                "test_mean": mean,
                "test_lo": lo,
                "test_hi": hi,
                "n_seeds": n,
                "time_ratio": _geomean(c["time_ratio"]),
                "flop_ratio": _geomean(c["flop_ratio"]),
                "step_ms": c["step_ms"].mean(),
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "name",
            "method_tag",
            "rule",
            "source",
            "thesis_method",
            "test_mean",
            "test_lo",
            "test_hi",
            "n_seeds",
            "time_ratio",
            "flop_ratio",
            "step_ms",
        ],
    )
    if table.empty:
        return table.assign(gap_to_dropout=[], on_time_front=[], on_flop_front=[])
    base = table.loc[table["name"] == BASELINE, "test_mean"]
    table["gap_to_dropout"] = table["test_mean"] - (base.iloc[0] if len(base) else math.nan)
    table["on_time_front"] = front(table, "time_ratio", "test_mean")
    table["on_flop_front"] = front(table, "flop_ratio", "test_mean")
    return table.sort_values("test_mean", ascending=False, ignore_index=True)


def claims_table(panel: pd.DataFrame) -> pd.DataFrame:
    """Each source's claim (`CLAIMS`) on the methods it concerns, with the numbers and a verdict;
    "not yet run" where a method lacks the whole panel."""
    rows = []
    have = panel.set_index("name") if not panel.empty else pd.DataFrame()
    for source, claim, names, kind in CLAIMS:
        for name in names:
            if name not in have.index:
                rows.append({"source": source, "claim": claim, "method": name, "verdict": "not yet run"})
                continue
            r = have.loc[name]
            holds = r["gap_to_dropout"] >= -LOSS if kind == "accuracy" else r["time_ratio"] < 1.0
            rows.append(
                {
                    "source": source,
                    "claim": claim,
                    "method": name,
                    "tag": r["method_tag"],
                    "gap_to_dropout_pts": 100 * r["gap_to_dropout"],
                    "time_ratio": r["time_ratio"],
                    "flop_ratio": r["flop_ratio"],
                    "verdict": "holds" if holds else "fails",
                }
            )
    return pd.DataFrame(
        rows, columns=["source", "claim", "method", "tag", "gap_to_dropout_pts", "time_ratio", "flop_ratio", "verdict"]
    )


def coverage(runs: pd.DataFrame, rules: ThesisGrid) -> tuple[int, int]:
    """``(runs done, runs of the experiment)``: methods x panel cells x seeds."""
    done = _panel_runs(runs, rules.tags)
    return len(done.drop_duplicates(["arch", "name", "seed"])), len(rules.tags) * len(PANEL) * PANEL_SEEDS
