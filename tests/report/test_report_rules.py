"""The rules page (report.rules): every rules-experiment method on the panel, accuracy against
backward cost, the Pareto fronts and the sources' claims, on synthetic runs with known numbers."""

from __future__ import annotations

import pandas as pd
import pytest
from synthetic import write_run

from asym_sweep.grid import PANEL, PANEL_SEEDS, load_grid, rule_methods
from asym_sweep.report import rules as rl
from asym_sweep.report.build import build
from asym_sweep.report.collect import collect

RULES = load_grid(methods=rule_methods())


def write_method(
    root,
    name: str,
    test: float,
    backward: float,
    flop_ratio: float,
    seeds: int = PANEL_SEEDS,
    cells: tuple[str, ...] = PANEL,
) -> None:
    spec = RULES.specs[name]
    scaling = RULES.settings.get(name, {}).get("dataset.scaling", "unit")
    for arch in cells:
        for seed in range(seeds):
            write_run(
                root,
                tag=RULES.tags[name],
                method=spec.name,
                rule=spec.rule,
                params=dict(spec.params),
                arch=arch,
                seed=seed,
                test=test + 0.001 * seed,
                val=test,
                backward=backward,
                flop_ratio=flop_ratio,
                scaling=scaling,
            )


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    write_method(root, "dropout", 0.880, backward=2.0, flop_ratio=1.0)
    write_method(root, "topk", 0.878, backward=1.0, flop_ratio=0.2)  # on both fronts: cheaper, 0.2 pt behind
    write_method(root, "swat", 0.884, backward=4.0, flop_ratio=0.6)  # most accurate: on both fronts
    write_method(root, "swat_80", 0.850, backward=3.0, flop_ratio=0.4)  # behind topk at more cost: on neither
    write_method(root, "vrpge", 0.860, backward=1.5, flop_ratio=0.3, seeds=2)  # a seed short: cells only
    return collect(root).runs


def test_the_front_holds_what_nothing_dominates():
    f = pd.DataFrame({"cost": [1.0, 2.0, 2.0, 3.0, None], "acc": [0.8, 0.9, 0.85, 0.9, 0.99]})
    assert list(rl.front(f, "cost", "acc")) == [True, True, False, False, False]


def test_the_panel_ranks_by_accuracy_with_cost_ratios_and_fronts(runs):
    panel = rl.panel_table(runs, RULES).set_index("name")
    assert list(panel.index) == ["swat", "dropout", "topk", "swat_80"]  # vrpge lacks a seed on every cell
    assert panel.loc["swat", "test_mean"] == pytest.approx(0.885)  # seeds 0.884, 0.885, 0.886
    assert panel.loc["topk", "gap_to_dropout"] == pytest.approx(-0.002)
    assert panel.loc["topk", "time_ratio"] == pytest.approx(0.5) and panel.loc[
        "swat_80", "flop_ratio"
    ] == pytest.approx(0.4)
    assert panel.loc["topk", "step_ms"] == pytest.approx(1e3 * 1.0 / 22000)
    assert set(panel.index[panel["on_time_front"]]) == {"topk", "dropout", "swat"}
    assert set(panel.index[panel["on_flop_front"]]) == {
        "topk",
        "swat",
    }  # swat: fewer FLOPs than dropout and more accurate
    assert panel.loc["topk", "source"] == "Srivastava 2022" and panel.loc["swat", "source"] == "SWAT"
    cells = rl.cell_table(runs, RULES)
    assert len(cells) == 5 * len(PANEL) and set(cells.loc[cells["name"] == "vrpge", "n_seeds"]) == {2}
    assert rl.coverage(runs, RULES) == (4 * 18 + 12, len(rule_methods()) * len(PANEL) * PANEL_SEEDS)


def test_each_sources_claim_is_judged_on_its_methods(runs):
    claims = rl.claims_table(rl.panel_table(runs, RULES))
    verdict = dict(zip(claims["method"], claims["verdict"]))
    assert verdict["swat"] == "holds" and verdict["swat_80"] == "fails"  # +0.4 pt; -3.0 pts
    assert verdict["vrpge"] == "not yet run" and verdict["saw"] == "not yet run"
    row = claims[claims["method"] == "swat_80"].iloc[0]
    assert row["gap_to_dropout_pts"] == pytest.approx(-3.0)


def test_the_report_has_the_rules_page_with_its_figure_and_tables(runs, tmp_path):
    report = build(tmp_path / "runs", tmp_path / "report", static=False, log=lambda _: None)
    html = (report.out_dir / "index.html").read_text()
    assert (
        "The rules: every registered rule on one protocol" in html and "on the time front swat, dropout, topk" in html
    )
    assert (report.out_dir / "figures" / "rules.html").is_file()
    assert (report.out_dir / "tables" / "rules_ranking.md").is_file()
    panel = pd.read_csv(report.out_dir / "data" / "rules_panel.csv")
    assert list(panel["name"]) == ["swat", "dropout", "topk", "swat_80"]


def test_no_rules_page_without_a_rule_beyond_the_thesis(tmp_path):
    root = tmp_path / "runs"
    write_method(root, "dropout", 0.880, backward=2.0, flop_ratio=1.0, cells=PANEL[:1])
    report = build(root, tmp_path / "report", static=False, log=lambda _: None)
    assert "The rules: every registered rule" not in (report.out_dir / "index.html").read_text()


def test_while_the_panel_is_unfinished_every_method_is_ranked_on_the_cells_all_have_finished(tmp_path):
    four = load_grid(methods=("dropout", "topk", "swat", "swat_80"))
    root = tmp_path / "runs"
    write_method(root, "dropout", 0.880, backward=2.0, flop_ratio=1.0)
    write_method(root, "topk", 0.878, backward=1.0, flop_ratio=0.2)
    write_method(root, "swat", 0.884, backward=4.0, flop_ratio=0.6, cells=PANEL[:2])
    write_method(root, "swat_80", 0.850, backward=3.0, flop_ratio=0.4, cells=PANEL[1:3])
    write_method(root, "swat_80", 0.850, backward=3.0, flop_ratio=0.4, seeds=1, cells=PANEL[:1])  # a seed only
    runs = collect(root).runs
    assert rl.ranked_cells(runs, four) == (PANEL[1],)  # the one cell where all four have every seed
    panel = rl.panel_table(runs, four).set_index("name")
    assert list(panel.index) == ["swat", "dropout", "topk", "swat_80"]
    assert panel.loc["swat", "time_ratio"] == pytest.approx(2.0)  # that cell's ratio alone
    # No cell finished by all: the whole panel, the methods that have it all.
    assert rl.ranked_cells(runs, RULES) == PANEL
    assert list(rl.panel_table(runs, RULES).index) == [0, 1]
