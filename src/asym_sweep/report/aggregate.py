"""Per (dataset, arch, method tag) summaries of the completed runs, and per-epoch curves.

Accuracy: mean of the final validation/test accuracy over seeds with a 95%
Student-t interval (`stats.mean_ci`). Time: mean backward seconds per run with the
range over seeds (times are positive and skewed: a symmetric interval around their
mean can fall below zero, a range cannot), and the ratio of means to the
symmetric-dropout baseline of the same dataset and arch (the thesis' comparison;
absolute seconds from different machines do not compare), how the timings were
taken (threads, parallel jobs, runs under load: `resources.under_load`),
the share of backward spent selecting indices (the thesis' "max-heap" time,
9.3), and the analytical multiply-add ratio to dense backprop.
"""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from asym_sweep.report.stats import mean_ci

GROUP = ["dataset", "arch", "depth", "width", "method_tag"]
# Which epoch's accuracies a run reports (the thesis: 20 epochs "determined using early
# stopping", tables of one number per run): the last epoch's; the epoch of best validation
# accuracy (validation and test both from it); or the best validation and the best test
# accuracy, each over the epochs.
EPOCH_MODES = {
    "final": ("val_acc", "test_acc"),
    "best_val": ("bestval_val_acc", "bestval_test_acc"),
    "best_each": ("max_val_acc", "max_test_acc"),
}
EPOCH_WORDS = {  # what each mode reports, as the page says it
    "final": "the final epoch",
    "best_val": "the epoch of best validation accuracy",
    "best_each": "the best validation and the best test accuracy over the epochs",
}
MEANS = (
    "backward_s",
    "select_s",
    "product_s",
    "forward_s",
    "optimizer_s",
    "train_s",
    "wall_s",
    "flop_ratio",
    "test_loss_rise",
)


def _ci_columns(prefix: str, values: pd.Series) -> dict[str, float]:
    mean, lo, hi, _ = mean_ci(values)
    return {f"{prefix}_mean": mean, f"{prefix}_lo": lo, f"{prefix}_hi": hi}


def summarize_group(group: pd.DataFrame) -> dict[str, object]:
    done = group[group["status"] == "completed"]
    row: dict[str, object] = {
        "n_seeds": len(done),
        "seeds": ",".join(str(s) for s in sorted(done["seed"])),
        "n_failed": int((group["status"] == "failed").sum()),
        "mixed_settings": done["settings"].nunique() > 1,
        "rule": group["rule"].iloc[0],
        "method": group["method"].iloc[0],
        "source": group["source"].iloc[0] if "source" in group else "yours",
        "started_at": done["started_at"].min() if "started_at" in done and len(done) else None,
        "git_commits": ",".join(sorted({str(c)[:8] for c in done["git_commit"].dropna()}))
        if "git_commit" in done
        else "",
    }
    row.update(_ci_columns("val_acc", done["val_acc"]))
    row.update(_ci_columns("test_acc", done["test_acc"]))
    for key in MEANS:
        row[f"{key}_mean"] = pd.to_numeric(done[key], errors="coerce").mean() if len(done) and key in done else math.nan
    row["backward_s_median"] = done["backward_s"].median() if len(done) else math.nan
    row["backward_s_min"] = done["backward_s"].min() if len(done) else math.nan
    row["backward_s_max"] = done["backward_s"].max() if len(done) else math.nan
    row.update(timing_conditions(done))
    row["select_share"] = row["select_s_mean"] / row["backward_s_mean"] if row["backward_s_mean"] else math.nan
    return row


def _values(column: pd.Series) -> str:
    return ",".join(str(int(v)) for v in sorted(column.dropna().unique()))


def _cpus(column: pd.Series) -> str:
    """The CPUs of a group's runs, joined with " / " when they differ; "?" for a run that has none
    recorded (made before `resources.cpu_description` was)."""
    return " / ".join(sorted({v if isinstance(v, str) and v else "?" for v in column}))


# The conditions two groups' times must share to compare: (column, plural, singular, the
# separator `timing_conditions` joins a group's differing values with: a CPU's name has commas).
TIMING_CONDITIONS = (
    ("timing_threads", "threads", "threads", ","),
    ("timing_jobs", "parallel jobs", "parallel jobs", ","),
    ("timing_cpu", "CPUs", "CPU", " / "),
)


def timing_conditions(done: pd.DataFrame) -> dict[str, object]:
    """How a group's timings were taken: threads, jobs and CPU per run (joined when they differ),
    and how many runs ran under load or have no load record (older runs)."""
    return {
        "timing_threads": _values(done["threads"]) if "threads" in done else "",
        "timing_jobs": _values(done["jobs"]) if "jobs" in done else "",
        "timing_cpu": _cpus(done["cpu"]) if "cpu" in done else "?",
        "n_under_load": int(done["under_load"].eq(True).sum()) if "under_load" in done else 0,
        "n_load_unknown": int(done["under_load"].isna().sum()) if "under_load" in done else len(done),
    }


def summarize(runs: pd.DataFrame, baseline: str | Sequence[str], epoch: str = "final") -> pd.DataFrame:
    """One row per group; ``backward_ratio`` (median backward seconds over the baseline's median) is
    NaN where the group's baseline has no completed run.
    ``baseline``: the baseline's tag, or its tags for the time ratio in order of preference
    (`grid.ThesisGrid.time_baselines`: the grid's baseline, then the same operations at another
    input scaling); `time_base` picks one per group, named in ``time_baseline``.
    ``epoch``: the reported epoch (`EPOCH_MODES`)."""
    if runs.empty:
        return pd.DataFrame(columns=[*GROUP, "n_seeds"])
    tags = (baseline,) if isinstance(baseline, str) else tuple(baseline)
    val, test = EPOCH_MODES[epoch]
    if epoch != "final":
        runs = runs.assign(val_acc=runs[val], test_acc=runs[test])
    rows = [{**dict(zip(GROUP, key)), **summarize_group(g)} for key, g in runs.groupby(GROUP, sort=True)]
    table = pd.DataFrame(rows)
    candidates: dict[tuple[str, str], list[pd.Series]] = {}
    for tag in tags:  # in order of preference
        for _, r in table[(table["method_tag"] == tag) & (table["n_seeds"] > 0)].iterrows():
            candidates.setdefault((r["dataset"], r["arch"]), []).append(r)
    chosen = [time_base(r, candidates.get((r["dataset"], r["arch"]), []), tags) for _, r in table.iterrows()]
    # The ratio of medians over seeds: one run slowed by other work on the machine (seen: a 10x
    # backward beside a test suite, its seeds at 1x) moves a mean, not a median of 3-5 seeds.
    table["backward_ratio"] = [
        r["backward_s_median"] / b["backward_s_median"] if b is not None else math.nan
        for (_, r), b in zip(table.iterrows(), chosen)
    ]
    table["time_baseline"] = [b["method_tag"] if b is not None else "" for b in chosen]
    table["timing_note"] = [timing_note(r, b) for (_, r), b in zip(table.iterrows(), chosen)]
    return table


def _timed_alike(row: pd.Series, base: pd.Series) -> bool:
    """Same CPU, jobs and threads, one CPU each, and made in one stretch (`STRETCH_H`)."""
    for key, _, _, sep in TIMING_CONDITIONS:
        value = str(row.get(key, ""))
        if sep in value or value != str(base.get(key, "")):
            return False
    apart = _hours_apart(row.get("started_at"), base.get("started_at"))
    return apart is not None and apart <= STRETCH_H


def time_base(row: pd.Series, candidates: list[pd.Series], tags: Sequence[str]) -> pd.Series | None:
    """The baseline group a row's time ratio is taken to: the first candidate (in `tags` order)
    timed like the row, else the first one (the grid's baseline where it has runs). The baseline's
    own rows are taken to the first, so that a second baseline's ratio shows what its time is.
    Why a second: the thesis compares backward times within one architecture (Tables 9.2-9.52),
    and dropout with standardised inputs does exactly the operations of dropout with [0, 1]
    pixels; where the grid's baseline was rerun on another machine, the other scaling's runs,
    made beside the sparse methods, are the like-for-like denominator."""
    if not candidates:
        return None
    if row["method_tag"] in tags:
        return candidates[0]
    return next((c for c in candidates if _timed_alike(row, c)), candidates[0])


def timing_note(row: pd.Series, base: pd.Series | None) -> str:
    """What makes a group's times, or their ratio to the baseline, not a like-for-like comparison ('' if nothing)."""
    if not row["n_seeds"]:
        return ""
    notes = []
    for key, what, one, sep in TIMING_CONDITIONS:
        if sep in str(row.get(key, "")):
            notes.append(f"{what} differ between seeds ({row[key]})")
        elif (
            base is not None and base["n_seeds"] and row is not base and str(base.get(key, "")) != str(row.get(key, ""))
        ):
            notes.append(f"{one} {row.get(key) or '?'} vs dropout's {base.get(key) or '?'}")
    if row["n_under_load"]:
        notes.append(f"{row['n_under_load']} of {row['n_seeds']} runs under load")
    if base is not None and row is not base and base["n_under_load"]:
        notes.append(f"{base['n_under_load']} of dropout's runs under load")
    if row["n_load_unknown"]:
        notes.append(f"load not recorded for {row['n_load_unknown']} runs")
    apart = _hours_apart(row.get("started_at"), None if base is None else base.get("started_at"))
    if row is not base and apart is not None and apart > STRETCH_H:
        notes.append(f"timed {apart:.0f} h apart from dropout's runs")
    return "; ".join(notes)


# Runs of one architecture are compared in time only when made in one stretch (the machine's
# speed drifts over hours on a shared VM): first runs further apart than this are flagged.
STRETCH_H = 12.0


def _hours_apart(a: object, b: object) -> float | None:
    try:
        return abs((pd.Timestamp(a) - pd.Timestamp(b)).total_seconds()) / 3600
    except (TypeError, ValueError):
        return None


def epoch_curves(epochs: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% CI of validation and test accuracy per (dataset, arch, method tag, epoch)."""
    if epochs.empty:
        return pd.DataFrame(columns=["dataset", "arch", "method_tag", "epoch", "n"])
    rows = []
    for key, g in epochs.groupby(["dataset", "arch", "method_tag", "epoch"], sort=True):
        row = dict(zip(["dataset", "arch", "method_tag", "epoch"], key))
        row.update(_ci_columns("val_acc", g["val_acc"]))
        row.update(_ci_columns("test_acc", g["test_acc"]))
        row["n"] = len(g)
        rows.append(row)
    return pd.DataFrame(rows)
