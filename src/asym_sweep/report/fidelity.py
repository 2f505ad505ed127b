"""The answer, for the report's first page: does the thesis reproduce?

* agreement: cells of the thesis' Fashion-MNIST tables where ``|ours - thesis| <= 1 pt`` or
  the thesis' value lies inside our 95% CI, for validation and for test accuracy;
* each claim of the thesis' abstract and conclusion, marked confirmed, refuted or unclear by
  our numbers, with the figure behind the verdict and the thesis' own;
* the cells that disagree: by how much, and whether the thesis' own interval is implausibly
  narrow or its validation-test gap unusual.

Claims are judged on cells that have runs of all four thesis methods; a claim with fewer than
`MIN_CELLS` such cells is unclear. Time claims use the cells whose time comparison carries no
timing caveat (`aggregate.timing_note`) when there are `MIN_CELLS` of them, else all, and say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from asym_sweep.grid import BASELINE, METHODS, ThesisGrid
from asym_sweep.report import quoted

AGREE = 0.01
MIN_CELLS = 5
DATASET = "fashion_mnist"


@dataclass(frozen=True)
class Claim:
    source: str  # where the thesis says it
    text: str
    verdict: str  # confirmed, refuted, unclear
    ours: str
    thesis: str


def agreement(accuracy: pd.DataFrame, grid: ThesisGrid) -> dict[str, tuple[int, int]]:
    """``split -> (cells agreeing, cells with a thesis value and our runs)``, Fashion-MNIST, thesis methods."""
    t = accuracy[
        (accuracy["dataset"] == DATASET) & accuracy["method_tag"].isin(grid.tags.values()) & (accuracy["n_seeds"] > 0)
    ]
    out = {}
    for split in ("val", "test"):
        have = t.dropna(subset=[f"thesis_{split}", f"{split}_acc_mean"])
        agree = (have[f"{split}_diff"].abs() <= AGREE + 1e-12) | have[f"{split}_thesis_inside"].eq(True)
        out[split] = (int(agree.sum()), len(have))
    return out


def wide(summary: pd.DataFrame, grid: ThesisGrid, value: str) -> pd.DataFrame:
    """Our ``value`` per (arch, thesis method) over the cells that have all four methods."""
    t = summary[
        (summary["dataset"] == DATASET) & summary["method_tag"].isin(grid.tags.values()) & (summary["n_seeds"] > 0)
    ]
    by_tag = {tag: name for name, tag in grid.tags.items()}
    w = t.assign(m=t["method_tag"].map(by_tag)).pivot_table(index="arch", columns="m", values=value)
    return w.reindex(columns=list(METHODS)).dropna()


def thesis_wide(reference: pd.DataFrame, kind: str, value: str) -> pd.DataFrame:
    r = reference[(reference["dataset"] == DATASET) & (reference["kind"] == kind)]
    return r.pivot_table(index="arch", columns="thesis_method", values=value).reindex(columns=list(METHODS))


def _verdict(share: float, n: int, confirm: float, refute: float, higher_confirms: bool = True) -> str:
    if n < MIN_CELLS or math.isnan(share):
        return "unclear"
    if higher_confirms:
        return "confirmed" if share >= confirm else "refuted" if share <= refute else "unclear"
    return "confirmed" if share <= confirm else "refuted" if share >= refute else "unclear"


def _pct(k: int, n: int) -> str:
    return f"{k} of {n} cells ({100 * k / n:.0f}%)" if n else "no cell yet"


def time_cells(
    summary: pd.DataFrame, grid: ThesisGrid, times: pd.DataFrame | None = None, where: str = ""
) -> tuple[pd.DataFrame, str]:
    """Backward-time ratios to dropout per (arch, method): the timing sweep's (``times``, the
    `thesis.time_comparison` frame, measured on ``where``) where it covers enough cells, else the
    20-epoch runs' from caveat-free cells where there are enough."""
    if times is not None and times["sweep_ratio"].notna().any():
        sweep = wide(times.rename(columns={"sweep_ratio": "ratio"}).assign(n_seeds=1), grid, "ratio")
        if len(sweep) >= MIN_CELLS:
            return sweep, f"{len(sweep)} cells of the timing sweep ({where})"
    ratios = wide(summary, grid, "backward_ratio")
    t = summary[(summary["dataset"] == DATASET) & summary["method_tag"].isin(grid.tags.values())]
    noted = set(t.loc[t["timing_note"].fillna("") != "", "arch"])
    clean = ratios[~ratios.index.isin(noted)]
    if len(clean) >= MIN_CELLS:
        return clean, f"{len(clean)} cells timed without caveats"
    return ratios, f"{len(ratios)} cells, {len(ratios) - len(clean)} with timing caveats (the report's time tables)"


def claims(
    summary: pd.DataFrame, reference: pd.DataFrame, grid: ThesisGrid, times: pd.DataFrame | None = None, where: str = ""
) -> list[Claim]:
    acc, t_acc = wide(summary, grid, "test_acc_mean"), thesis_wide(reference, "accuracy", "test")
    n = len(acc)
    out = []
    if n:
        better = int((acc[["topk", "partial"]].max(axis=1) > acc["dropout"]).sum())
        t_better = int((t_acc[["topk", "partial"]].max(axis=1) > t_acc["dropout"]).sum())
        out.append(
            Claim(
                f"abstract; 10.1 ({quoted.BEATS_DROPOUT_SHARE})",
                "asymmetric training (top-k or partial) beats symmetric training with dropout",
                _verdict(better / n, n, 0.6, 0.4),
                _pct(better, n),
                _pct(t_better, len(t_acc)),
            )
        )
        best, t_best = acc.idxmax(axis=1).value_counts(), t_acc.idxmax(axis=1).value_counts()
        shares = ", ".join(f"{m} {100 * best.get(m, 0) / n:.0f}%" for m in ("topk", "partial", "dropout", "complete"))
        t_shares = ", ".join(
            f"{m} {100 * t_best.get(m, 0) / len(t_acc):.0f}%" for m in ("topk", "partial", "dropout", "complete")
        )
        plurality = best.index[0] if len(best) and (len(best) == 1 or best.iloc[0] > best.iloc[1]) else None
        verdict = (
            "unclear" if n < MIN_CELLS or plurality is None else ("confirmed" if plurality == "topk" else "refuted")
        )
        out.append(
            Claim(
                "9.6; 10.1",
                f"top-k is the best method most often ({quoted.BEST_SHARES})",
                verdict,
                shares,
                t_shares,
            )
        )
        worst, t_worst = int((acc.idxmin(axis=1) == "complete").sum()), int((t_acc.idxmin(axis=1) == "complete").sum())
        out.append(
            Claim(
                "9.6",
                "complete sparsification is the worst, consistently in all the experiments",
                _verdict(worst / n, n, 0.9, 0.5),
                _pct(worst, n),
                _pct(t_worst, len(t_acc)),
            )
        )
        big = [a for a in acc.index if int(a.split("-")[1]) >= 512 and int(a[1:].split("-")[0]) >= 3]
        t_big = [a for a in t_acc.index if int(a.split("-")[1]) >= 512 and int(a[1:].split("-")[0]) >= 3]
        ahead = sum(acc.loc[a, "partial"] > acc.loc[a, "topk"] for a in big)
        t_ahead = sum(t_acc.loc[a, "partial"] > t_acc.loc[a, "topk"] for a in t_big)
        out.append(
            Claim(
                "9.6",
                "partial connectivity is better in larger networks (3-5 layers of 512-1024)",
                _verdict(ahead / len(big) if big else math.nan, len(big), 0.6, 0.4),
                _pct(ahead, len(big)),
                _pct(t_ahead, len(t_big)),
            )
        )
        rise = wide(summary, grid, "test_loss_rise_mean")
        if len(rise):
            less = int((rise[["topk", "partial"]].min(axis=1) < rise["dropout"]).sum())
            out.append(
                Claim(
                    "abstract",
                    "asymmetric training reduced overfitting (test loss rises less after its best epoch than "
                    "dropout's)",
                    _verdict(less / len(rise), len(rise), 0.6, 0.4),
                    _pct(less, len(rise)),
                    "not measured in the thesis' tables",
                )
            )
        top = summary[(summary["dataset"] == DATASET) & summary["method_tag"].isin(grid.tags.values())].dropna(
            subset=["test_acc_mean"]
        )
        if len(top):
            b = top.loc[top["test_acc_mean"].idxmax()]
            ours_best = f"{b['arch']} {grid.method_of(b['method_tag'])} ({b['test_acc_mean']:.4f})"
            have = ((top["arch"] == "l1-512") & (top["method_tag"] == grid.baseline_tag)).any()
            verdict = (
                "unclear"
                if n < MIN_CELLS or not have
                else ("confirmed" if (b["arch"], b["method_tag"]) == ("l1-512", grid.baseline_tag) else "refuted")
            )
            out.append(
                Claim(
                    "9.6",
                    "the best accuracy of all experiments is l1-512 with symmetric dropout",
                    verdict,
                    ours_best,
                    quoted.BEST_CELL,
                )
            )
    ratios, basis = time_cells(summary, grid, times, where)
    t_time = thesis_wide(reference, "time", "backward_time")
    t_ratio = t_time.div(t_time[BASELINE], axis=0)
    m = len(ratios)
    if m:
        below = int(((ratios["topk"] < 1) & (ratios["partial"] < 1)).sum())
        out.append(
            Claim(
                "abstract",
                "asymmetric training (top-k, partial) reduces backpropagation time against dropout",
                _verdict(below / m, m, 0.9, 0.5),
                f"{_pct(below, m)}; {basis}",
                _pct(int(((t_ratio["topk"] < 1) & (t_ratio["partial"] < 1)).sum()), len(t_ratio)),
            )
        )
        mean_tp = float(ratios[["topk", "partial"]].mean().mean())
        verdict = (
            "unclear"
            if m < MIN_CELLS
            else "confirmed"
            if 0.35 <= mean_tp <= 0.65
            else "refuted"
            if mean_tp > 0.8
            else "unclear"
        )
        out.append(
            Claim(
                "9.6; 10.1",
                "top-k and partial cut backpropagation time by around 50%",
                verdict,
                f"top-k {ratios['topk'].mean():.2f}, partial {ratios['partial'].mean():.2f} of dropout's (mean ratio)",
                f"top-k {t_ratio['topk'].mean():.2f}, partial {t_ratio['partial'].mean():.2f}",
            )
        )
        least = int((ratios["topk"] < ratios["partial"]).sum())
        out.append(
            Claim(
                "9.5.3; 10.1",
                "top-k has the least backpropagation time; partial more, despite its smaller products",
                _verdict(least / m, m, 0.8, 0.5),
                _pct(least, m),
                _pct(int((t_ratio["topk"] < t_ratio["partial"]).sum()), len(t_ratio)),
            )
        )
        slow = float(ratios["complete"].mean())
        verdict = (
            "unclear" if m < MIN_CELLS else "confirmed" if slow >= 0.85 else "refuted" if slow <= 0.7 else "unclear"
        )
        out.append(
            Claim(
                "9.5.3",
                "complete sparsification is almost as slow as ordinary backpropagation",
                verdict,
                f"{slow:.2f} of dropout's (mean ratio)",
                f"{t_ratio['complete'].mean():.2f}",
            )
        )
    return out


def disagreements(accuracy: pd.DataFrame, grid: ThesisGrid) -> pd.DataFrame:
    """Cells whose test or validation accuracy disagrees, with what may explain it in the thesis' own numbers."""
    t = accuracy[
        (accuracy["dataset"] == DATASET) & accuracy["method_tag"].isin(grid.tags.values()) & (accuracy["n_seeds"] >= 2)
    ]
    rows = []
    for r in t.itertuples():
        for split in ("val", "test"):
            diff = getattr(r, f"{split}_diff")
            inside = getattr(r, f"{split}_thesis_inside")
            if pd.isna(diff) or abs(diff) <= AGREE or inside is True:
                continue
            ours_half = (getattr(r, f"{split}_acc_hi") - getattr(r, f"{split}_acc_lo")) / 2
            thesis_half = (getattr(r, f"thesis_{split}_hi") - getattr(r, f"thesis_{split}_lo")) / 2
            notes = []
            if thesis_half > 0 and ours_half > 0 and thesis_half < ours_half / 3:
                notes.append(f"thesis CI {ours_half / thesis_half:.0f}x narrower than ours")
            gap_t, gap_o = r.thesis_val - r.thesis_test, r.val_acc_mean - r.test_acc_mean
            if abs(gap_t) >= 0.02 and abs(gap_t - gap_o) >= 0.015:
                notes.append(f"thesis val-test gap {100 * gap_t:+.1f} pts (ours {100 * gap_o:+.1f})")
            rows.append(
                {
                    "arch": r.arch,
                    "method": grid.label(r.method_tag),
                    "split": split,
                    "ours": getattr(r, f"{split}_acc_mean"),
                    "thesis": getattr(r, f"thesis_{split}"),
                    "diff_pts": 100 * diff,
                    "notes": "; ".join(notes),
                }
            )
    return pd.DataFrame(rows)


def pattern_table(accuracy: pd.DataFrame, grid: ThesisGrid) -> pd.DataFrame:
    """Per thesis method over the Fashion-MNIST architectures: the correlation of our mean accuracy
    with the thesis' across architectures, and the spread (standard deviation, in points) of each:
    whether our methods respond to the architecture as the thesis' do, not only cell by cell."""
    t = accuracy[
        (accuracy["dataset"] == DATASET) & accuracy["method_tag"].isin(grid.tags.values()) & (accuracy["n_seeds"] > 0)
    ]
    rows = []
    for tag in grid.order(t["method_tag"].unique()):
        g = t[t["method_tag"] == tag]
        row: dict[str, object] = {"method_tag": tag, "archs": len(g)}
        for split in ("val", "test"):
            both = g.dropna(subset=[f"{split}_acc_mean", f"thesis_{split}"])
            row[f"{split}_corr"] = (
                float(both[f"{split}_acc_mean"].corr(both[f"thesis_{split}"])) if len(both) >= 3 else math.nan
            )
            row[f"{split}_spread_ours"] = 100 * float(both[f"{split}_acc_mean"].std())
            row[f"{split}_spread_thesis"] = 100 * float(both[f"thesis_{split}"].std())
        rows.append(row)
    return pd.DataFrame(rows)


def artefacts_table(accuracy: pd.DataFrame, grid: ThesisGrid, seeds: int = 5) -> pd.DataFrame:
    """The features of the thesis' own tables that bear on a disagreement, per method, ours beside:
    the validation-test gap (points, mean over architectures); how much the accuracy moves with
    depth at a fixed width (points, the mean over widths of the standard deviation over depths), for
    validation and test; and the cells whose 95% half-width (test) is under a third of ours over
    ``seeds`` seeds (the note `disagreements` gives a cell)."""
    t = accuracy[
        (accuracy["dataset"] == DATASET) & accuracy["method_tag"].isin(grid.tags.values()) & (accuracy["n_seeds"] > 0)
    ]
    t = t.assign(width=t["arch"].str.split("-").str[1].astype(int))
    rows = []
    for tag in grid.order(t["method_tag"].unique()):
        g = t[t["method_tag"] == tag]
        by_width = g.groupby("width")
        half_ours = (g["test_acc_hi"] - g["test_acc_lo"]) / 2
        half_thesis = (g["thesis_test_hi"] - g["thesis_test_lo"]) / 2
        rows.append(
            {
                "method_tag": tag,
                "archs": len(g),
                "gap_thesis": 100 * float((g["thesis_val"] - g["thesis_test"]).mean()),
                "gap_ours": 100 * float((g["val_acc_mean"] - g["test_acc_mean"]).mean()),
                "depth_spread_val_thesis": 100 * float(by_width["thesis_val"].std().mean()),
                "depth_spread_test_thesis": 100 * float(by_width["thesis_test"].std().mean()),
                "depth_spread_val_ours": 100 * float(by_width["val_acc_mean"].std().mean()),
                "depth_spread_test_ours": 100 * float(by_width["test_acc_mean"].std().mean()),
                "narrow_ci_cells": int((half_thesis < half_ours / 3).sum()),
                "seeds": seeds,
            }
        )
    return pd.DataFrame(rows)
