"""scripts/bench_row_topk.py runs end to end (a few calls; nothing here is timed)."""

from __future__ import annotations

import pytest
from helpers import load_script

from asym_sweep import native


def test_prints_a_ratio_for_every_input_and_thread_count(capsys):
    if native.helper() is None:
        pytest.skip("no C++ compiler on this machine")
    bench = load_script("bench_row_topk")
    assert bench.main(["--calls", "2", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# helper asym-helper-") and "helper/torch" in lines[1]
    rows = lines[2:]
    assert len(rows) == 6 and all(float(r.split()[-1]) > 0 for r in rows)
    assert [r.split()[-4] for r in rows] == ["1", "2"] * 3


def test_without_the_helper_it_says_so(monkeypatch, capsys):
    bench = load_script("bench_row_topk")
    monkeypatch.setattr(bench.native, "helper", lambda: None)
    assert bench.main(["--calls", "2"]) == 2
    assert "no compiled helper here" in capsys.readouterr().err
    assert bench.main(["--calls", "0"]) == 2
