"""The readings page: agreement per reading over the panel, the best reading per method, the
thesis' claims, and the reported-epoch readings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from synthetic import DROPOUT, PARTIAL, write_run, write_thesis_run

from asym_sweep.grid import PANEL as PANEL_CELLS
from asym_sweep.grid import load_grid
from asym_sweep.report import readings as rd
from asym_sweep.report import thesis as th
from asym_sweep.report.aggregate import summarize
from asym_sweep.report.build import build
from asym_sweep.report.collect import collect, epoch_picks

GRID = load_grid()
PANEL = ("l5-64", "l2-128")
# Thesis test accuracies (Tables 9.9 and 9.13).
THESIS = {
    ("l5-64", "dropout"): 0.8215,
    ("l5-64", "topk"): 0.8381,
    ("l5-64", "partial"): 0.8302,
    ("l5-64", "complete"): 0.7961,
    ("l2-128", "dropout"): 0.853,
    ("l2-128", "topk"): 0.8686,
    ("l2-128", "partial"): 0.8459,
    ("l2-128", "complete"): 0.8445,
}
TAGS = {"dropout": DROPOUT, "topk": "topk-k40", "partial": PARTIAL, "complete": "complete-k170"}


@pytest.fixture
def panel_runs(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    offsets = {"dropout": 0.004, "topk": -0.02, "partial": -0.03, "complete": -0.05}
    for arch in PANEL:
        for method, off in offsets.items():
            for seed in (0, 1, 2):  # the panel's 3 seeds: a reading counts on a cell once it has them all
                test = THESIS[(arch, method)] + off + 0.001 * seed
                write_thesis_run(
                    runs,
                    TAGS[method],
                    arch=arch,
                    seed=seed,
                    val=test,
                    test=test,
                    backward=2.0 if method == "dropout" else 1.0,
                )
        # partial at batch 10: within a point of the thesis
        for seed in (0, 1, 2):
            test = THESIS[(arch, "partial")] + 0.002 + 0.001 * seed
            write_run(
                runs,
                tag="partial-k1_40-k2_200+b10",
                method="partial",
                rule="partial",
                params={"k1": 40, "k2": 200},
                arch=arch,
                seed=seed,
                val=test,
                test=test,
                batch=10,
            )
    return runs


def test_agreement_per_reading_and_the_best_reading(panel_runs: Path) -> None:
    runs = collect(panel_runs).runs
    table = rd.reading_table(runs, th.load_reference(GRID), GRID, PANEL)
    final = table[table["epoch"] == "final"].set_index("reading")
    assert final.loc["partial-k1_40-k2_200+b10", "agree_test"] == 2 and final.loc[PARTIAL, "agree_test"] == 0
    assert final.loc[DROPOUT, "agree_test"] == 2 and final.loc["topk-k40", "agree_test"] == 0
    assert final.loc["partial-k1_40-k2_200+b10", "mean_abs_diff_test"] == pytest.approx(0.003)
    assert bool(final.loc[PARTIAL, "default"]) and not bool(final.loc["partial-k1_40-k2_200+b10", "default"])
    best = rd.best_readings(table, "final")
    assert best == {**TAGS, "partial": "partial-k1_40-k2_200+b10"}


def test_the_claims_on_a_reading_set(panel_runs: Path) -> None:
    runs = collect(panel_runs).runs
    claims = rd.claims(runs, th.load_reference(GRID), GRID, TAGS, "final", PANEL).set_index("claim")
    # ours: dropout best on both cells (thesis + 0.4 pt against top-k's - 2 pts); the thesis: top-k on both
    assert claims.loc["best method per cell (test)", "agree"] == "0 of 2"
    assert claims.loc["best method per cell (test)", "thesis"] == "l5-64: topk, l2-128: topk"
    # complete is the thesis' worst on both (l2-128: 0.8445 against partial's 0.8459), and ours
    assert (
        claims.loc["complete sparsification worst", "ours"]
        == claims.loc["complete sparsification worst", "thesis"]
        == "2 of 2"
    )
    assert claims.loc["backward time / dropout's, topk (mean over cells)", "ours"] == "0.500"


def test_a_reading_still_running_counts_nowhere(panel_runs: Path) -> None:
    import shutil

    shutil.rmtree(panel_runs / "fashion_mnist" / "l2-128" / "partial-k1_40-k2_200+b10" / "seed2")
    table = rd.reading_table(collect(panel_runs).runs, th.load_reference(GRID), GRID, PANEL)
    final = table[table["epoch"] == "final"].set_index("reading")
    # partial's readings are compared on l5-64 only now, where both have their 3 seeds
    assert final.loc[PARTIAL, "cells"] == final.loc["partial-k1_40-k2_200+b10", "cells"] == 1
    assert final.loc["topk-k40", "cells"] == 2


def test_epoch_picks_and_the_reported_epoch() -> None:
    history = [
        {"epoch": 1, "val_acc": 0.80, "test_acc": 0.78},
        {"epoch": 2, "val_acc": 0.84, "test_acc": 0.80},
        {"epoch": 3, "val_acc": 0.84, "test_acc": 0.83},
        {"epoch": 4, "val_acc": 0.82, "test_acc": 0.82},
    ]
    picks = epoch_picks(history)
    assert picks == {
        "best_val_epoch": 2,
        "bestval_val_acc": 0.84,
        "bestval_test_acc": 0.80,
        "max_val_acc": 0.84,
        "max_test_acc": 0.83,
        "test_loss_rise": None,
    }  # no test losses in this history
    rise = epoch_picks([{**h, "test_loss": loss} for h, loss in zip(history, (0.6, 0.5, 0.45, 0.55))])
    assert rise["test_loss_rise"] == pytest.approx(0.10)
    runs = pd.DataFrame(
        [
            {
                "dataset": "d",
                "arch": "l1-8",
                "depth": 1,
                "width": 8,
                "method_tag": "t",
                "method": "topk",
                "rule": "topk",
                "status": "completed",
                "seed": 0,
                "settings": "",
                "val_acc": 0.82,
                "test_acc": 0.82,
                **picks,
                **{
                    k: 1.0
                    for k in (
                        "backward_s",
                        "select_s",
                        "product_s",
                        "forward_s",
                        "optimizer_s",
                        "train_s",
                        "wall_s",
                        "flop_ratio",
                    )
                },
            }
        ]
    )
    for epoch, (val, test) in {"final": (0.82, 0.82), "best_val": (0.84, 0.80), "best_each": (0.84, 0.83)}.items():
        row = summarize(runs, "none", epoch).iloc[0]
        assert (row["val_acc_mean"], row["test_acc_mean"]) == (val, test)


def test_the_report_has_a_readings_page(panel_runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    build(panel_runs, out, seeds=2, log=lambda _: None)
    index = (out / "index.html").read_text()
    assert 'id="readings"' in index and "partial-k1_40-k2_200+b10" in index
    for epoch in ("final", "best_val", "best_each"):
        assert (out / "tables" / f"readings_{epoch}.md").is_file()
    assert (out / "tables" / "readings_claims_best.md").is_file()
    assert not (out / "tables" / "readings_first_seed.md").exists()  # every seed is in: nothing to show apart
    assert not (out / "tables" / "readings_whole_panel.md").exists()  # no reading on the whole (real) panel


def test_the_first_seed_alone_while_the_others_run(panel_runs: Path, tmp_path: Path) -> None:
    """A third panel cell with seed 0 only: the 3-seed tables keep 2 cells, and a table of seed 0
    alone covers all 3 (and appears only while it covers more)."""
    for method, tag in TAGS.items():
        write_thesis_run(panel_runs, tag, arch="l1-256", seed=0, val=0.85, test=0.85)
    write_run(
        panel_runs,
        tag="partial-k1_40-k2_200+b10",
        method="partial",
        rule="partial",
        params={"k1": 40, "k2": 200},
        arch="l1-256",
        seed=0,
        val=0.8609,
        test=0.8609,
        batch=10,
    )  # the thesis' value (Table 9.23)
    panel = (*PANEL, "l1-256")
    runs = collect(panel_runs).runs
    first = rd.reading_table(runs, th.load_reference(GRID), GRID, panel, seeds=1)
    first = first[first["epoch"] == "final"].set_index("reading")
    assert (
        first.loc["partial-k1_40-k2_200+b10", "cells"] == 3
        and first.loc["partial-k1_40-k2_200+b10", "within_test"] == 3
    )
    assert (
        rd.reading_table(runs, th.load_reference(GRID), GRID, panel).set_index("reading").loc["topk-k40", "cells"].max()
        == 2
    )
    out = tmp_path / "report"
    build(panel_runs, out, seeds=2, log=lambda _: None)
    assert (out / "tables" / "readings_first_seed.md").is_file()


def test_readings_further_from_the_thesis_than_the_default_are_ruled_out(panel_runs: Path, tmp_path: Path) -> None:
    """Top-k's default is 2 pts off the thesis here; a reading 5 pts off is ruled out, one 2.2 pts
    off (within half a point of the default) is not, and neither is the better partial reading."""
    for arch in PANEL:
        for seed in (0, 1, 2):
            for tag, off, setting in (
                ("topk-k40+lr0.01", -0.05, {"lr": 0.01}),
                ("topk-k40+b200", -0.023, {"batch": 200}),
            ):
                test = THESIS[(arch, "topk")] + off + 0.001 * seed
                write_run(
                    panel_runs,
                    tag=tag,
                    method="topk",
                    rule="topk",
                    params={"k": 40},
                    arch=arch,
                    seed=seed,
                    val=test,
                    test=test,
                    **setting,
                )
    table = rd.reading_table(collect(panel_runs).runs, th.load_reference(GRID), GRID, PANEL)
    out = {reading: (off, base) for reading, off, base in rd.ruled_out(table, GRID)}
    assert set(out) == {"topk-k40+lr0.01"}  # b200 is 0.2 pt further than the default, inside the margin
    off, base = out["topk-k40+lr0.01"]
    assert off - base == pytest.approx(0.03, abs=1e-9)
    assert rd.best_readings(table, "final")["topk"] == "topk-k40"


def test_the_readings_complete_on_the_whole_panel_while_others_run(panel_runs: Path, tmp_path: Path) -> None:
    """A third panel cell where every default has its 3 seeds but partial at batch 10 only seed 0:
    the common-cells table keeps partial's readings on 2 cells, and the whole-panel table compares the
    complete readings on all 3, leaving out the one still running (the page: the next test)."""
    offsets = {"dropout": 0.004, "topk": -0.02, "partial": -0.03, "complete": -0.05}
    for method, tag in TAGS.items():
        for seed in (0, 1, 2):
            write_thesis_run(
                panel_runs, tag, arch="l1-256", seed=seed, val=0.86 + offsets[method], test=0.86 + offsets[method]
            )
    write_run(
        panel_runs,
        tag="partial-k1_40-k2_200+b10",
        method="partial",
        rule="partial",
        params={"k1": 40, "k2": 200},
        arch="l1-256",
        seed=0,
        val=0.8609,
        test=0.8609,
        batch=10,
    )
    panel = (*PANEL, "l1-256")
    runs = collect(panel_runs).runs
    reference = th.load_reference(GRID)
    common = rd.reading_table(runs, reference, GRID, panel)
    common = common[common["epoch"] == "final"].set_index("reading")
    assert common.loc[PARTIAL, "cells"] == 2 and common.loc["topk-k40", "cells"] == 3
    whole = rd.reading_table(runs, reference, GRID, panel, cells="panel")
    whole = whole[whole["epoch"] == "final"].set_index("reading")
    assert set(whole.index) == set(TAGS.values())  # the batch-10 reading lacks seeds 1-2 on l1-256
    assert (whole["cells"] == 3).all()
    with pytest.raises(ValueError, match="cells must be one of"):
        rd.reading_table(runs, reference, GRID, panel, cells="all")


def test_the_page_shows_the_whole_panel_table_when_it_covers_more(panel_runs: Path, tmp_path: Path) -> None:
    """The defaults on every cell of the real panel, partial at batch 10 on two: partial's common
    cells are those two, the whole-panel table compares its default on all six and the page shows it."""
    for arch in PANEL_CELLS[2:]:
        for tag in TAGS.values():
            for seed in (0, 1, 2):
                write_thesis_run(panel_runs, tag, arch=arch, seed=seed, val=0.87, test=0.86)
    out = tmp_path / "report"
    build(panel_runs, out, seeds=2, log=lambda _: None)
    whole = (out / "tables" / "readings_whole_panel.md").read_text()
    assert f"| partial | {PARTIAL} (default) | 6 |" in whole and "+b10" not in whole
    common = (out / "tables" / "readings_final.md").read_text()
    assert f"| partial | {PARTIAL} (default) | 2 |" in common
