import math

import pandas as pd
from synthetic import DROPOUT

from asym_sweep.grid import load_grid
from asym_sweep.report import tables


def test_cell_formats() -> None:
    assert tables.fmt_ci(0.81234, 0.8, 0.82, 3) == "0.8123 (0.8000, 0.8200)"
    assert tables.fmt_ci(0.81234, math.nan, math.nan, 1) == "0.8123 (n=1)"
    assert tables.fmt_ci(math.nan, math.nan, math.nan, 0) == "missing"
    assert tables.fmt_ci(math.nan, math.nan, math.nan) == "—"
    assert tables.fmt_num(0.0123, signed=True) == "+0.0123"
    assert tables.fmt_inside(pd.NA) == "n/a" and tables.fmt_inside(True) == "yes" and tables.fmt_inside(False) == "no"


def _comparison_rows() -> pd.DataFrame:
    nan = math.nan
    return pd.DataFrame(
        [
            {
                "method_tag": "topk-k40",
                "n_seeds": 2,
                "n_failed": 1,
                "val_acc_mean": 0.895,
                "val_acc_lo": 0.85,
                "val_acc_hi": 0.94,
                "test_acc_mean": 0.8,
                "test_acc_lo": 0.8,
                "test_acc_hi": 0.8,
                "thesis_val": 0.8957,
                "thesis_val_lo": 0.8897,
                "thesis_val_hi": 0.9017,
                "thesis_test": 0.8753,
                "thesis_test_lo": 0.8745,
                "thesis_test_hi": 0.8761,
                "val_diff": -0.0007,
                "test_diff": -0.0753,
                "val_thesis_inside": True,
                "test_thesis_inside": False,
            },
            {
                "method_tag": DROPOUT,
                "n_seeds": 0,
                "n_failed": 0,
                "val_acc_mean": nan,
                "val_acc_lo": nan,
                "val_acc_hi": nan,
                "test_acc_mean": nan,
                "test_acc_lo": nan,
                "test_acc_hi": nan,
                "thesis_val": 0.904,
                "thesis_val_lo": 0.8981,
                "thesis_val_hi": 0.9099,
                "thesis_test": 0.863,
                "thesis_test_lo": 0.8625,
                "thesis_test_hi": 0.8635,
                "val_diff": nan,
                "test_diff": nan,
                "val_thesis_inside": pd.NA,
                "test_thesis_inside": pd.NA,
            },
        ]
    )


def test_accuracy_table_has_thesis_rows_first_and_missing_not_zero() -> None:
    t = tables.accuracy_table(_comparison_rows(), load_grid())
    assert list(t["Method"]) == ["Symmetric dropout 0.4", "Top-k asymmetry k=40"]
    dropout, topk = t.iloc[0], t.iloc[1]
    assert dropout["Validation (ours)"] == "missing" and dropout["Δ val"] == "—" and dropout["Seeds"] == "0"
    assert topk["Validation (ours)"] == "0.8950 (0.8500, 0.9400)" and topk["thesis in CI (val)"] == "yes"
    assert topk["thesis in CI (test)"] == "no" and topk["Seeds"] == "2 (1 failed)"
    assert "0.0000" not in " ".join(dropout.astype(str))


def test_renderers() -> None:
    t = pd.DataFrame({"Method": ["a_b & c"], "Δ": ["missing"]})
    md = tables.to_markdown(t, "T")
    assert md.splitlines()[2:4] == ["| Method | Δ |", "|---|---|"]
    tex = tables.to_latex(t, "cap 9.1", "tab:x")
    assert r"a\_b \& c & missing \\" in tex and r"$\Delta$" in tex and r"\caption{cap 9.1}" in tex
    page = tables.to_html(t, "T <1>")
    assert '<td class="missing">missing</td>' in page and "T &lt;1&gt;" in page and "a_b &amp; c" in page
