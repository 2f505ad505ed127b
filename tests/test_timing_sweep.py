"""The timing sweep (asym_sweep.timing_sweep): what it builds, what it writes, how it fails.
Nothing here is timed: the tests check the record's shape and arithmetic, never a speed."""

from __future__ import annotations

import json

import pytest

from asym_sweep import timing_records as tr
from asym_sweep import timing_sweep as ts
from asym_sweep.grid import load_grid


def tiny(data_root) -> list[str]:
    return [f"dataset.root={data_root}", "dataset.val_size=50"]


def test_jobs_are_the_grid_runs_configs(tiny_data):
    grid = load_grid()
    for method in ("dropout", "topk", "partial", "complete"):
        cfg = ts.compose_job(method, "l2-64", tiny(tiny_data))
        assert cfg.arch == "l2-64" and cfg.method.name == method
        assert ts.run_tag(cfg).replace("+val50", "") == grid.tags[method]  # dropout-p0.4, topk-k40, ...


def test_a_small_sweep_writes_one_record_with_every_round(tiny_data, tmp_path, capsys):
    out = tmp_path / "timing"
    args = [
        "--archs",
        "l1-16",
        "l2-32",
        "--warmup",
        "1",
        "--steps",
        "2",
        "--rounds",
        "3",
        "--out",
        str(out),
        *tiny(tiny_data),
    ]
    assert ts.main(args) == 0
    (path,) = out.glob("*.json")
    record = tr.TimingRecord.from_json(json.loads(path.read_text()))
    assert record.plan["archs"] == ["l1-16", "l2-32"] and record.plan["overrides"] == tiny(tiny_data)
    assert len(record.rows) == 2 * 4 * 3
    assert {"host", "cpu", "threads", "torch", "git_commit", "loadavg_start", "loadavg_end"} <= set(record.machine)
    # Round-robin: each round starts with another method.
    firsts = [r["method"] for r in record.rows if r["arch"] == "l1-16" and r["position"] == 0]
    assert firsts == ["dropout", "topk", "complete"]
    for row in record.rows:
        assert row["backward_ms"] > 0 and row["step_ms"] >= row["backward_ms"] and 0 < row["flop_ratio"] <= 1
    table = tr.ratio_table(record.rows)
    assert [t["ratio"] for t in table if t["method"] == "dropout"] == [1.0, 1.0]
    printed = capsys.readouterr()
    assert printed.out.splitlines()[0].split()[:3] == ["arch", "method", "backward"]
    assert "projected" in printed.err and "[2/2] l2-32" in printed.err
    assert [p for p, _ in tr.read_records(out)] == [path]


def test_ratios_are_taken_round_by_round():
    rows = []
    for r, (base, topk) in enumerate([(1.0, 0.5), (2.0, 0.6), (1.0, 0.8)]):
        rows += [
            {
                "arch": "l1-64",
                "method": "dropout",
                "tag": "d",
                "round": r,
                "backward_ms": base,
                "select_ms": 0.0,
                "step_ms": 3.0,
                "flop_ratio": 1.0,
            },
            {
                "arch": "l1-64",
                "method": "topk",
                "tag": "t",
                "round": r,
                "backward_ms": topk,
                "select_ms": 0.1,
                "step_ms": 2.0,
                "flop_ratio": 0.6,
            },
        ]
    (_, topk) = tr.ratio_table(rows)
    assert topk["ratio"] == 0.5 and topk["ratio_min"] == 0.3 and topk["ratio_max"] == 0.8
    assert topk["backward_ms"] == 0.6 and topk["rounds"] == 3


@pytest.mark.parametrize(
    "args,message",
    [
        (["--rounds", "0"], "--rounds must be at least 1"),
        (["--methods", "topk"], "must include dropout"),
        (["--methods", "dropout", "nope"], "unknown method nope"),
        (["--archs", "l0-5"], "bad architecture"),
        (["--archs", "l1-16", "train.epoc=3"], "train.epoc"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, tiny_data, capsys, args, message):
    out = tmp_path / "timing"
    assert ts.main([*args, "--steps", "1", "--warmup", "0", "--out", str(out), *tiny(tiny_data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("timing_sweep: error:") and message in err[-1]
    assert not out.exists()


def test_missing_data_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ASYM_SWEEP_DATA", raising=False)
    out = tmp_path / "timing"
    # MNIST has no Debian folder to fall back on: with no root and no $ASYM_SWEEP_DATA it is not found.
    args = ["--archs", "l1-16", "--steps", "1", "--out", str(out), "dataset=mnist", f"dataset.root={tmp_path / 'none'}"]
    assert ts.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "data not found" in err[-1] and not out.exists()


def test_read_records_skips_other_files(tmp_path):
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    (tmp_path / "broken.json").write_text("{")
    assert tr.read_records(tmp_path) == []
