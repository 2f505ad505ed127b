import math
from pathlib import Path

import pandas as pd
import pytest
from synthetic import DROPOUT, PARTIAL, write_thesis_run

from asym_sweep.grid import load_grid
from asym_sweep.report import thesis as th
from asym_sweep.report.aggregate import summarize
from asym_sweep.report.collect import collect

GRID = load_grid()


@pytest.fixture(scope="module")
def ref() -> pd.DataFrame:
    return th.load_reference(GRID)


def test_every_table_is_transcribed(ref: pd.DataFrame) -> None:
    assert len(ref) == 208
    assert sorted(ref["table"].unique(), key=lambda t: int(t.split(".")[1])) == [f"9.{n}" for n in range(1, 53)]
    counts = ref.groupby("table").size()
    assert (counts == 4).all()
    assert set(ref[ref["kind"] == "accuracy"]["table"]) == {f"9.{n}" for n in range(1, 53, 2)}


@pytest.mark.parametrize(
    "table, tag, column, value",
    [
        ("9.3", DROPOUT, "val", 0.8786),
        ("9.27", "topk-k40", "val_lo", 0.8897),
        ("9.27", "complete-k170", "test", 0.8522),
        ("9.47", PARTIAL, "test_hi", 0.8734),
        ("9.51", "complete-k170", "test", 0.7894),
        ("9.28", "topk-k40", "backward_time", 4829.54),
        ("9.52", DROPOUT, "backward_time", 53276.58),
        ("9.2", "complete-k170", "backward_time", 4647.8),
    ],
)
def test_spot_values(ref: pd.DataFrame, table: str, tag: str, column: str, value: float) -> None:
    assert ref[(ref["table"] == table) & (ref["method_tag"] == tag)][column].item() == value


def test_table_numbers_follow_the_grid(ref: pd.DataFrame) -> None:
    numbers = th.table_numbers(ref)
    assert numbers[("mnist", "l1-512")] == {"accuracy": "9.1", "time": "9.2"}
    assert numbers[("fashion_mnist", "l1-64")] == {"accuracy": "9.3", "time": "9.4"}
    assert numbers[("fashion_mnist", "l3-256")] == {"accuracy": "9.27", "time": "9.28"}
    assert numbers[("fashion_mnist", "l5-1024")] == {"accuracy": "9.51", "time": "9.52"}


def test_table_9_1_follows_the_text(ref: pd.DataFrame) -> None:
    # Thesis 9.2.3: complete sparsification val 98.58%, test 98.002%; 9.2.4: partial val 98.28%, test 98.10%.
    t = ref[ref["table"] == "9.1"].set_index("method_tag")
    assert (t.loc["complete-k170", "val"], t.loc["complete-k170", "test"]) == (0.9858, 0.98002)
    assert (t.loc[PARTIAL, "val"], t.loc[PARTIAL, "test"]) == (0.9828, 0.981)
    assert "swaps" in t.loc["complete-k170", "note"]


def test_thesis_claim_is_reproduced_from_its_own_tables(ref: pd.DataFrame) -> None:
    # Chapter 10: top-k best in 60%, partial 28%, symmetric 12% of the 25 Fashion-MNIST architectures.
    empty = pd.DataFrame(columns=["dataset", "arch", "method_tag", "n_seeds", "test_acc_mean"])
    best = th.best_method_summary(empty, ref, GRID).set_index("method_tag")
    assert best["thesis_best"].to_dict() == {DROPOUT: 3, "topk-k40": 15, PARTIAL: 7, "complete-k170": 0}
    assert best.loc["topk-k40", "thesis_best_pct"] == 60.0 and best.loc["complete-k170", "thesis_worst"] == 18
    assert best["ours_archs"].iloc[0] == 0


def test_comparisons_on_known_numbers(tmp_path: Path, ref: pd.DataFrame) -> None:
    # l3-256, thesis topk val 0.8957 (Table 9.27); our seeds 0.89, 0.90 -> mean 0.895, CI +- 12.7062 * 0.00707 / 1.414
    for seed, val in enumerate([0.89, 0.90]):
        write_thesis_run(tmp_path, "topk-k40", arch="l3-256", seed=seed, val=val, test=0.80, backward=1.0)
        write_thesis_run(tmp_path, DROPOUT, arch="l3-256", seed=seed, backward=4.0)
    write_thesis_run(tmp_path, "topk-k40", arch="l3-256", seed=2, val=0.90, test=0.80, status="failed")
    s = summarize(collect(tmp_path).runs, GRID.baseline_tag)
    acc = th.accuracy_comparison(s, ref)
    row = acc[(acc["arch"] == "l3-256") & (acc["method_tag"] == "topk-k40")].iloc[0]
    assert row["val_diff"] == pytest.approx(0.895 - 0.8957)
    assert row["val_thesis_inside"] is True or row["val_thesis_inside"] == True  # noqa: E712
    assert row["test_thesis_inside"] == False  # noqa: E712  (0.80 exactly, no spread; thesis 0.8753)
    assert row["n_failed"] == 1
    missing = acc[(acc["arch"] == "l1-64") & (acc["method_tag"] == "topk-k40")].iloc[0]
    assert missing["n_seeds"] == 0 and math.isnan(missing["val_acc_mean"]) and missing["thesis_val"] == 0.8810
    times = th.time_comparison(s, ref, GRID)
    t = times[(times["arch"] == "l3-256") & (times["method_tag"] == "topk-k40")].iloc[0]
    assert t["backward_ratio"] == pytest.approx(0.25)
    assert t["thesis_ratio"] == pytest.approx(4829.54 / 7424.35)
    assert t["ratio_diff"] == pytest.approx(0.25 - 4829.54 / 7424.35)


def test_new_methods_are_ordered_after_the_thesis_ones() -> None:
    assert GRID.order(["swat-s0.7", "topk-k40", DROPOUT, "random-k40"]) == [
        DROPOUT,
        "topk-k40",
        "random-k40",
        "swat-s0.7",
    ]
    assert (
        GRID.label("swat-s0.7") == "swat-s0.7"
        and GRID.label(PARTIAL) == "Partial connectivity k1=40, k2=200, x_scope=sample"
    )


def test_a_changed_k_changes_the_comparison_and_does_not_break_it(tmp_path: Path) -> None:
    """Issue 16: report/thesis.py hard-coded topk-k40; a k changed in conf/method/topk.yaml
    silently disconnected the thesis comparison."""
    import shutil

    from asym_sweep.config import CONF_DIR
    from asym_sweep.report.build import build

    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "method" / "topk.yaml").write_text((conf / "method" / "topk.yaml").read_text().replace("k: 40", "k: 50"))
    grid = load_grid(conf)
    assert grid.tags["topk"] == "topk-k50" and grid.label("topk-k50") == "Top-k asymmetry k=50"
    runs = tmp_path / "runs"
    for seed in (0, 1):
        write_thesis_run(runs, DROPOUT, arch="l3-256", seed=seed, backward=4.0)
        write_thesis_run(runs, "topk-k40", arch="l3-256", seed=seed, val=0.90, backward=1.0)
    for seed, val in enumerate([0.89, 0.90]):
        run = write_thesis_run(runs, "topk-k40", arch="l3-256", seed=seed, val=val, backward=1.0)
        k50 = run.parents[1] / "topk-k50" / run.name
        shutil.copytree(run, k50)
        for path in (k50 / ".hydra" / "config.yaml", k50 / "result.json"):
            path.write_text(path.read_text().replace("k: 40", "k: 50").replace('"k": 40', '"k": 50'))
    ref = th.load_reference(grid)
    s = summarize(collect(runs).runs, grid.baseline_tag)
    acc = th.accuracy_comparison(s, ref)
    row = acc[(acc["arch"] == "l3-256") & (acc["method_tag"] == "topk-k50")].iloc[0]
    assert row["thesis_val"] == 0.8957 and row["val_acc_mean"] == pytest.approx(0.895)  # the thesis' top-k beside ours
    assert (
        acc[(acc["arch"] == "l3-256") & (acc["method_tag"] == "topk-k40")]["thesis_val"].isna().all()
    )  # now just another run
    out = tmp_path / "report"
    build(runs, out, seeds=2, log=lambda _: None, grid=grid)
    assert "| Top-k asymmetry k=50 | 0.8950 (" in (out / "tables" / "fashion_mnist_l3-256_accuracy.md").read_text()
