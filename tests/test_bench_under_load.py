"""scripts/bench_under_load.py: real runs end to end, and its errors (nothing here is timed)."""

from __future__ import annotations

from helpers import load_script


def test_prints_each_try_and_the_worst_ratio(shared_data, capsys):
    bench = load_script("bench_under_load")
    assert bench.main(["--arch", "l1-64", "--threads", "1", "--tries", "1", "--train-limit", "200"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# l1-64 top-k, 1 epoch on 200 images")
    threads, try_, alone, beside, ratio, *used = lines[2].split()
    assert (threads, try_) == ("1", "1") and float(alone) > 0 and float(beside) > 0 and float(ratio) > 0
    assert "".join(used) == "(1,1)"  # threads=1 is taken as given, busy loop or not
    assert lines[3].split()[:3] == ["1", "worst", "ratio"]


def test_a_failed_run_is_one_line(capsys):
    bench = load_script("bench_under_load")
    assert bench.main(["--arch", "l0-5", "--threads", "0", "--tries", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench_under_load: error: a run failed:")
    assert "bad architecture" in err[0]


def test_bad_arguments_exit_2(capsys):
    bench = load_script("bench_under_load")
    assert bench.main(["--tries", "0"]) == 2
    assert bench.main(["--threads", "-1"]) == 2
    assert capsys.readouterr().err.count("bench_under_load: error:") == 2
