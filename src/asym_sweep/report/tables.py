"""The thesis' tables in the thesis' shape, ours beside theirs, as Markdown, HTML and LaTeX.

Accuracy tables (thesis Tables 9.1, 9.3, ... 9.51): one row per method,
validation and test accuracy as ``mean (lo, hi)``. Time tables (9.2, ... 9.52):
one row per method, backward seconds and the ratio to dropout (of medians over
seeds). Cell
conventions: a group with one seed shows ``mean (n=1)`` (no interval exists);
a method without a completed run shows ``missing`` (never zero); a value the
thesis does not have shows an em dash.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd

from asym_sweep.grid import ThesisGrid

MISSING = "missing"
NONE = "—"


def _isnan(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def fmt_ci(mean: float, lo: float, hi: float, n: int | None = None, digits: int = 4) -> str:
    if _isnan(mean):
        return MISSING if n is not None else NONE
    if _isnan(lo) or _isnan(hi):
        return f"{mean:.{digits}f} (n=1)" if n == 1 else f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({lo:.{digits}f}, {hi:.{digits}f})"


def fmt_range(mean: float, lo: float, hi: float, n: int, digits: int = 2) -> str:
    """``mean (min–max)`` over seeds; one seed shows ``mean (n=1)``."""
    if _isnan(mean):
        return MISSING if n == 0 else NONE
    if n < 2:
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def fmt_num(value: float, digits: int = 4, signed: bool = False, missing: str = NONE) -> str:
    if _isnan(value):
        return missing
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def fmt_inside(value: object) -> str:
    return "n/a" if _isnan(value) else ("yes" if value else "no")


def _seeds(n: int, failed: int = 0) -> str:
    return f"{n} ({failed} failed)" if failed else str(n)


def _by_method(rows: pd.DataFrame, grid: ThesisGrid):
    """``(tag, row, n_seeds)`` for one (dataset, arch), in the thesis' method order."""
    for tag in grid.order(rows["method_tag"]):
        r = rows[rows["method_tag"] == tag].iloc[0]
        yield tag, r, int(r["n_seeds"])


def accuracy_table(rows: pd.DataFrame, grid: ThesisGrid) -> pd.DataFrame:
    """Rows of `thesis.accuracy_comparison` for one (dataset, arch) -> display table."""
    out = []
    for tag, r, n in _by_method(rows, grid):
        out.append(
            {
                "Method": grid.label(tag),
                "Validation (ours)": fmt_ci(r["val_acc_mean"], r["val_acc_lo"], r["val_acc_hi"], n),
                "Validation (thesis)": fmt_ci(r["thesis_val"], r["thesis_val_lo"], r["thesis_val_hi"]),
                "Δ val": fmt_num(r["val_diff"], signed=True),
                "thesis in CI (val)": fmt_inside(r["val_thesis_inside"]),
                "Test (ours)": fmt_ci(r["test_acc_mean"], r["test_acc_lo"], r["test_acc_hi"], n),
                "Test (thesis)": fmt_ci(r["thesis_test"], r["thesis_test_lo"], r["thesis_test_hi"]),
                "Δ test": fmt_num(r["test_diff"], signed=True),
                "thesis in CI (test)": fmt_inside(r["test_thesis_inside"]),
                "Seeds": _seeds(n, int(r["n_failed"])),
            }
        )
    return pd.DataFrame(out)


def time_table(rows: pd.DataFrame, grid: ThesisGrid) -> pd.DataFrame:
    """Rows of `thesis.time_comparison` for one (dataset, arch) -> display table."""
    out = []
    for tag, r, n in _by_method(rows, grid):
        out.append(
            {
                "Method": grid.label(tag),
                "Timing sweep: backward ms/step": fmt_num(r.get("sweep_backward_ms"), 3),
                "Sweep ratio to dropout (min–max over rounds)": fmt_range(
                    r.get("sweep_ratio"), r.get("sweep_ratio_min"), r.get("sweep_ratio_max"), 2, digits=3
                ),
                "Backward s (ours): mean (min–max)": fmt_range(
                    r["backward_s_mean"], r["backward_s_min"], r["backward_s_max"], n
                ),
                "Ratio to dropout (ours)": fmt_num(r["backward_ratio"], 3, missing=MISSING if n == 0 else NONE),
                "Ratio taken to": (r.get("time_baseline") or NONE) if n else NONE,
                "Time (thesis)": fmt_num(r["thesis_time"], 2),
                "Ratio to dropout (thesis)": fmt_num(r["thesis_ratio"], 3),
                "Δ ratio": fmt_num(r["ratio_diff"], 3, signed=True),
                "Selection s": fmt_num(r["select_s_mean"], 2, missing=MISSING if n == 0 else NONE),
                "Product s": fmt_num(r["product_s_mean"], 2, missing=MISSING if n == 0 else NONE),
                "Selection share": fmt_num(r["select_share"], 3, missing=MISSING if n == 0 else NONE),
                "FLOP ratio": fmt_num(r["flop_ratio_mean"], 4, missing=MISSING if n == 0 else NONE),
                "Seeds": str(n),
                "Threads x jobs": f"{r['timing_threads'] or '?'} x {r['timing_jobs'] or '?'}" if n else NONE,
                "Timing caveats": (r["timing_note"] or "none") if n else NONE,
            }
        )
    return pd.DataFrame(out)


def to_markdown(table: pd.DataFrame, title: str = "") -> str:
    cells = table.astype(str).map(lambda s: s.replace("|", "\\|"))
    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(cells.columns) + " |")
    lines.append("|" + "|".join("---" for _ in cells.columns) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "Δ": r"$\Delta$",
    "—": "---",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(table: pd.DataFrame, caption: str = "", label: str = "") -> str:
    spec = "l" + "r" * (len(table.columns) - 1)
    lines = [r"\begin{table}[htbp]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\hline"]
    lines.append(" & ".join(latex_escape(c) for c in table.columns) + r" \\ \hline")
    lines += [" & ".join(latex_escape(str(v)) for v in row) + r" \\" for row in table.itertuples(index=False)]
    lines += [r"\hline", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_html(table: pd.DataFrame, title: str = "") -> str:
    """A fragment: a table with a caption, cells marked ``missing`` styled apart."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = []
    for row in table.astype(str).itertuples(index=False):
        cells = "".join(f'<td class="{"missing" if v.startswith(MISSING) else ""}">{html.escape(v)}</td>' for v in row)
        body.append(f"<tr>{cells}</tr>")
    caption = f"<caption>{html.escape(title)}</caption>" if title else ""
    return f'<table class="results">{caption}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>\n'


def write_all_formats(table: pd.DataFrame, stem: Path, title: str) -> list[Path]:
    """``stem.md``, ``stem.html``, ``stem.tex``; returns the paths written."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".md"), stem.with_suffix(".html"), stem.with_suffix(".tex")]
    paths[0].write_text(to_markdown(table, title))
    paths[1].write_text(
        f'<!doctype html><meta charset="utf-8"><title>{html.escape(title)}</title>\n{to_html(table, title)}'
    )
    paths[2].write_text(to_latex(table, title, f"tab:{stem.name}"))
    return paths
