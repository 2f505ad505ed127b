"""scripts/bench_threads.py: real runs end to end, and its errors (nothing here is timed)."""

from __future__ import annotations

import json

from helpers import load_script


def test_prints_epochs_per_hour_and_writes_them(shared_data, tmp_path, capsys):
    bench = load_script("bench_threads")
    out = tmp_path / "bench"
    args = [
        "--archs",
        "l1-64",
        "--methods",
        "topk",
        "--settings",
        "1x1",
        "2x1",
        "--rounds",
        "1",
        "--train-limit",
        "200",
        "--out",
        str(out),
    ]
    assert bench.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["arch", "method", "1x1", "ep/h", "2x1", "ep/h", "2x1/1x1"]
    arch, method, *figures = lines[1].split()
    assert (arch, method) == ("l1-64", "topk") and len(figures) == 3 and all(float(f) > 0 for f in figures)
    (written,) = out.glob("threads-*.json")
    record = json.loads(written.read_text())
    assert record["settings"] == ["1x1", "2x1"] and record["rows"][0]["arch"] == "l1-64"
    assert len(record["rows"][0]["train_s"]) == 2


def test_a_failed_run_is_one_line_and_nothing_is_written(tmp_path, capsys):
    bench = load_script("bench_threads")
    out = tmp_path / "bench"
    assert (
        bench.main(["--archs", "l0-5", "--methods", "topk", "--settings", "1x1", "--rounds", "1", "--out", str(out)])
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench_threads: error: a run failed (l0-5 topk)")
    assert "bad architecture" in err[0]
    assert not out.exists()


def test_bad_arguments_exit_2(capsys):
    bench = load_script("bench_threads")
    assert bench.main(["--settings", "2y1"]) == 2
    assert bench.main(["--rounds", "0"]) == 2
    assert capsys.readouterr().err.count("bench_threads: error:") == 2
