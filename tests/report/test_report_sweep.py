"""The report's time half from the timing sweep (report.sweep_times), and the thesis' own time
tables examined (thesis.time_table_pattern)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from synthetic import DROPOUT, PARTIAL, write_thesis_run

from asym_sweep.grid import load_grid
from asym_sweep.report import sweep_times
from asym_sweep.report.build import build
from asym_sweep.report.thesis import load_reference, time_table_pattern
from asym_sweep.timing_records import TimingRecord

TAGS = {"dropout": DROPOUT, "topk": "topk-k40", "partial": PARTIAL, "complete": "complete-k170"}


def write_record(folder: Path, started: str, backward: dict[str, float], host: str = "bench-host") -> Path:
    rows = [
        {
            "arch": "l1-64",
            "method": m,
            "tag": TAGS[m],
            "round": r,
            "position": 0,
            "forward_ms": 1.0,
            "backward_ms": ms * (1 + 0.1 * r),
            "select_ms": 0.0,
            "optimizer_ms": 1.0,
            "step_ms": 3.0 + ms,
            "flop_ratio": 0.5,
        }
        for r in range(3)
        for m, ms in backward.items()
    ]
    record = TimingRecord(
        {"rounds": 3, "steps": 10, "overrides": []},
        {"host": host, "cpu": "Test CPU, AVX2", "threads": 1, "git_commit": "abc1234def", "git_dirty": False},
        started,
        rows=rows,
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{host}-{started[:10]}.json"
    path.write_text(json.dumps(record.to_json()))
    return path


def test_the_thesis_time_tables_follow_the_width_not_k():
    grid = load_grid()
    p = time_table_pattern(load_reference(grid), grid).set_index("method")
    topk = p.loc["topk"]
    assert (topk["most_common_ratio"], topk["archs_at_it"], topk["archs"]) == (0.62, 17, 25)
    assert (topk["ratio_min"], topk["ratio_max"]) == (0.56, 0.65)
    assert topk["kept_share_max"] == 40 / 64 and topk["kept_share_min"] == 40 / 1024
    d = p.loc["dropout"]
    assert d["dropout_line_r2_min"] > 0.996 and d["deepest"] == 5
    assert d["time_growth"] == pytest.approx(53276.58 / 3335.98) and d["madds_growth"] > 100


def test_the_users_sweep_is_preferred_and_the_newest_record_taken(tmp_path):
    mine, published = tmp_path / "outputs" / "timing", tmp_path / "results" / "timing"
    write_record(published, "2026-01-02T00:00:00+00:00", {"dropout": 1.0, "topk": 0.9}, host="old")
    write_record(published, "2026-02-02T00:00:00+00:00", {"dropout": 1.0, "topk": 0.8}, host="new")
    found = sweep_times.load([(mine, "yours"), (published, "published")])
    assert found.source == "published" and "new (Test CPU, AVX2)" in found.where
    assert found.frame.set_index("method_tag").loc["topk-k40", "sweep_ratio"] == pytest.approx(0.8)
    write_record(mine, "2025-01-01T00:00:00+00:00", {"dropout": 1.0, "topk": 0.5}, host="mine")
    found = sweep_times.load([(mine, "yours"), (published, "published")])
    assert found.source == "yours" and found.frame.set_index("method_tag").loc[
        "topk-k40", "sweep_ratio"
    ] == pytest.approx(0.5)
    assert sweep_times.load([(tmp_path / "none", "yours")]) is None


def four_methods(runs: Path) -> None:
    for seed in (0, 1):
        for i, tag in enumerate(TAGS.values()):
            write_thesis_run(runs, tag, seed=seed, val=0.85, test=0.84, backward=1.0 + i)


def test_time_tables_and_answer_use_the_sweep_beside_the_runs(tmp_path):
    runs, timing = tmp_path / "runs", tmp_path / "timing"
    four_methods(runs)
    write_record(timing, "2026-02-02T00:00:00+00:00", {"dropout": 2.0, "topk": 1.0, "partial": 3.0, "complete": 2.2})
    out = tmp_path / "report"
    build(runs, out, log=lambda _: None, static=False, timing=[timing])
    times = pd.read_csv(out / "data" / "comparison_time.csv")
    times = times[(times["dataset"] == "fashion_mnist") & (times["arch"] == "l1-64")].set_index("method_tag")
    assert times.loc["topk-k40", "sweep_ratio"] == pytest.approx(0.5) and times.loc[
        "topk-k40", "backward_ratio"
    ] == pytest.approx(2.0)
    table = (out / "tables" / "fashion_mnist_l1-64_time.md").read_text()
    assert "Timing sweep: backward ms/step" in table and "| 0.500 (0.500–0.500) |" in table
    answer = (out / "tables" / "answer_backward_ratio.md").read_text()
    assert "timing sweep: bench-host (Test CPU, AVX2)" in answer
    index = (out / "index.html").read_text()
    assert "the time claims use the timing sweep (yours: bench-host" in index
    assert "Its dropout times lie on a straight line in the width" in index


def test_without_a_sweep_the_runs_answer_and_the_page_says_so(tmp_path):
    runs = tmp_path / "runs"
    four_methods(runs)
    out = tmp_path / "report"
    build(runs, out, log=lambda _: None, static=False, timing=[tmp_path / "no-timing"])
    assert "no timing sweep found (make timing)" in (out / "index.html").read_text()
    assert pd.read_csv(out / "data" / "comparison_time.csv")["sweep_ratio"].isna().all()
