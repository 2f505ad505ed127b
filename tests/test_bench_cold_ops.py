"""scripts/bench_cold_ops.py runs end to end and refuses bad sizes (tiny sizes; nothing here is timed)."""

from __future__ import annotations

import re

import pytest
from helpers import load_script


def test_prints_a_row_for_every_op(capsys):
    script = load_script("bench_cold_ops")
    assert (
        script.main(["--width", "64", "--batch", "4", "--k", "8", "--flush-mb", "1", "--rounds", "3", "--threads", "1"])
        == 0
    )
    out = capsys.readouterr().out
    for name in script.small_ops(64, 4, 8):
        assert re.search(rf"^{re.escape(name)} +[\d.]+ +[\d.]+ +[\d.]+$", out, re.M), name


def test_measures_every_op_both_ways():
    script = load_script("bench_cold_ops")
    results = script.measure(script.small_ops(64, 4, 8), flush_mb=1, rounds=3, seed=0)
    assert set(results) == set(script.small_ops(64, 4, 8))
    assert all(warm > 0 and cold > 0 for warm, cold in results.values())


def test_table_gives_microseconds_and_ratio():
    table = load_script("bench_cold_ops").render({"op": (2e-6, 10e-6)})
    assert table.splitlines()[1].split() == ["op", "2.0", "10.0", "5.0"]


def test_ops_compute_on_the_sizes_asked():
    ops = load_script("bench_cold_ops").small_ops(32, 5, 4)
    assert ops["topk of a width vector"]().indices.shape == (4,)
    assert ops["index_select of k columns"]().shape == (5, 4)
    assert ops["matmul (batch x k) @ (k x width)"]().shape == (5, 32)


@pytest.mark.parametrize("args", [["--k", "0"], ["--width", "8", "--k", "9"], ["--flush-mb", "0"], ["--rounds", "0"]])
def test_bad_sizes_exit_with_a_message(args, capsys):
    with pytest.raises(SystemExit) as exc:
        load_script("bench_cold_ops").main(args)
    assert exc.value.code == 2
    assert "must be" in capsys.readouterr().err
