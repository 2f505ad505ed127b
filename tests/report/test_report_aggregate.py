import math
from pathlib import Path

import pytest
from synthetic import DROPOUT, PARTIAL, write_thesis_run

from asym_sweep.report.aggregate import epoch_curves, summarize
from asym_sweep.report.collect import collect

BASE = DROPOUT


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    for seed, (val, test) in enumerate([(0.80, 0.70), (0.82, 0.72), (0.84, 0.77)]):
        write_thesis_run(tmp_path, "topk-k40", seed=seed, val=val, test=test, backward=1.0, select=0.25, flop_ratio=0.1)
        write_thesis_run(tmp_path, DROPOUT, seed=seed, val=0.9, test=0.8, backward=2.0, select=0.0, flop_ratio=1.0)
    write_thesis_run(tmp_path, "topk-k40", seed=3, status="failed")
    write_thesis_run(tmp_path, "complete-k170", seed=0, val=0.7, test=0.6, backward=3.0)
    write_thesis_run(tmp_path, PARTIAL, arch="l2-64", seed=0)  # no dropout baseline on l2-64
    return tmp_path


def _row(summary, arch: str, tag: str):
    return summary[(summary["arch"] == arch) & (summary["method_tag"] == tag)].iloc[0]


def test_accuracy_ci_time_ratio_and_counts(runs: Path) -> None:
    s = summarize(collect(runs).runs, BASE)
    topk = _row(s, "l1-64", "topk-k40")
    assert (topk["n_seeds"], topk["n_failed"], topk["seeds"]) == (3, 1, "0,1,2")
    assert topk["val_acc_mean"] == pytest.approx(0.82)
    assert topk["val_acc_lo"] == pytest.approx(0.82 - 0.0496828, abs=1e-6)
    # test: mean 0.73, s = sqrt(((-.03)^2 + (-.01)^2 + .04^2) / 2) = sqrt(0.0013), half = 4.302653 * s / sqrt(3)
    half = 4.302653 * math.sqrt(0.0013) / math.sqrt(3)
    assert topk["test_acc_hi"] == pytest.approx(0.73 + half, abs=1e-6)
    assert topk["backward_ratio"] == pytest.approx(0.5)
    assert topk["select_share"] == pytest.approx(0.25)
    assert topk["flop_ratio_mean"] == pytest.approx(0.1)
    assert _row(s, "l1-64", DROPOUT)["backward_ratio"] == pytest.approx(1.0)
    assert _row(s, "l1-64", "complete-k170")["backward_ratio"] == pytest.approx(1.5)


def test_single_seed_and_missing_baseline(runs: Path) -> None:
    s = summarize(collect(runs).runs, BASE)
    complete = _row(s, "l1-64", "complete-k170")
    assert complete["n_seeds"] == 1 and complete["val_acc_mean"] == 0.7 and math.isnan(complete["val_acc_lo"])
    assert math.isnan(_row(s, "l2-64", PARTIAL)["backward_ratio"])


def test_only_failed_runs_give_a_group_without_numbers(tmp_path: Path) -> None:
    write_thesis_run(tmp_path, "topk-k40", status="failed")
    row = summarize(collect(tmp_path).runs, BASE).iloc[0]
    assert (row["n_seeds"], row["n_failed"]) == (0, 1) and math.isnan(row["val_acc_mean"])


def test_other_settings_are_other_rows_and_mixed_settings_are_flagged(tmp_path: Path) -> None:
    write_thesis_run(tmp_path, "topk-k40", seed=0)
    write_thesis_run(tmp_path, "topk-k40", seed=1, lr=0.01)
    s = summarize(collect(tmp_path).runs, BASE)
    assert sorted(s["method_tag"]) == ["topk-k40", "topk-k40+lr0.01"] and not s["mixed_settings"].any()
    # Same tag, an identity difference the tag does not encode (say, a key from another version).
    run = write_thesis_run(tmp_path, "topk-k40", seed=2)
    config = run / ".hydra" / "config.yaml"
    config.write_text(config.read_text() + "new_option: 3\n")
    s = summarize(collect(tmp_path).runs, BASE)
    assert bool(s.loc[s["method_tag"] == "topk-k40", "mixed_settings"].iloc[0])


def test_epoch_curves(runs: Path) -> None:
    curves = epoch_curves(collect(runs).epochs)
    topk = curves[(curves["arch"] == "l1-64") & (curves["method_tag"] == "topk-k40")].set_index("epoch")
    assert list(topk.index) == list(range(1, 21)) and set(topk["n"]) == {3}
    assert topk.loc[19, "val_acc_mean"] == pytest.approx(0.81)  # each seed is 0.01 lower one epoch earlier
    assert topk.loc[20, "val_acc_hi"] == pytest.approx(0.82 + 0.0496828, abs=1e-6)


def test_one_run_slowed_by_other_work_does_not_move_the_time_ratio(tmp_path: Path) -> None:
    """The ratio to dropout is of medians over seeds: a 10x backward of one seed (a run that shared
    the machine with a test suite) leaves it where its other seeds put it; the mean still shows it."""
    for seed, backward in enumerate([1.0, 10.0, 1.2]):
        write_thesis_run(tmp_path, PARTIAL, arch="l5-64", seed=seed, backward=backward)
        write_thesis_run(tmp_path, DROPOUT, arch="l5-64", seed=seed, backward=2.0)
    partial = _row(summarize(collect(tmp_path).runs, BASE), "l5-64", PARTIAL)
    assert partial["backward_ratio"] == pytest.approx(0.6)
    assert partial["backward_s_mean"] == pytest.approx(12.2 / 3) and partial["backward_s_max"] == 10.0


def test_the_time_ratio_takes_the_baseline_timed_like_the_row(tmp_path: Path) -> None:
    """A baseline whose method file fixes a cost-neutral setting (standardised inputs, as dropout's
    did before all methods took [0, 1] pixels), rerun on another CPU: top-k's time ratio is taken
    to the [0, 1]-pixel dropout runs made beside it (the same operations), and says so."""
    import shutil

    from synthetic import write_run

    from asym_sweep.config import CONF_DIR
    from asym_sweep.grid import load_grid

    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    dropout_file = conf / "method" / "dropout.yaml"
    dropout_file.write_text(dropout_file.read_text() + "dataset:\n  scaling: standard\n")
    grid = load_grid(conf)
    base, unit = grid.time_baselines
    assert (base, unit) == ("dropout-p0.4+standard", "dropout-p0.4")
    runs = tmp_path / "runs"
    day, later = "2026-12-01T10:00:00+00:00", "2026-12-02T20:00:00+00:00"
    dropout = dict(method="dropout", rule="dense", params={})
    for seed in range(3):
        write_thesis_run(runs, "topk-k40", arch="l2-64", seed=seed, backward=1.0, cpu="AMD, AVX2", started_at=day)
        write_run(runs, tag=unit, **dropout, arch="l2-64", seed=seed, backward=4.0, cpu="AMD, AVX2", started_at=day)
        write_run(
            runs,
            tag=base,
            **dropout,
            scaling="standard",
            arch="l2-64",
            seed=seed,
            backward=2.0,
            cpu="Intel, AVX512",
            started_at=later,
        )
        # On l3-64 every run was made on one CPU in one stretch: the grid's baseline is taken.
        write_thesis_run(runs, "topk-k40", arch="l3-64", seed=seed, backward=1.0, started_at=day)
        write_run(runs, tag=unit, **dropout, arch="l3-64", seed=seed, backward=4.0, started_at=day)
        write_run(runs, tag=base, **dropout, scaling="standard", arch="l3-64", seed=seed, backward=2.0, started_at=day)
    s = summarize(collect(runs).runs, grid.time_baselines)
    topk = _row(s, "l2-64", "topk-k40")
    assert topk["time_baseline"] == unit and topk["backward_ratio"] == pytest.approx(0.25) and topk["timing_note"] == ""
    assert _row(s, "l2-64", unit)["backward_ratio"] == pytest.approx(
        2.0
    )  # a second baseline is shown against the first
    assert _row(s, "l2-64", base)["backward_ratio"] == pytest.approx(1.0)
    assert _row(s, "l3-64", "topk-k40")["time_baseline"] == base and _row(s, "l3-64", "topk-k40")[
        "backward_ratio"
    ] == pytest.approx(0.5)
    # With only the rerun baseline, the ratio is taken to it and the caveat says why it is not like for like.
    only = summarize(collect(runs).runs[lambda r: r["method_tag"] != unit], grid.time_baselines)
    assert (
        _row(only, "l2-64", "topk-k40")["time_baseline"] == base
        and "vs dropout's" in _row(only, "l2-64", "topk-k40")["timing_note"]
    )
