from __future__ import annotations

import json

from asym_sweep import records, status
from helpers import cli, small_overrides


def test_status_counts_states_and_missing_cells(tiny_data, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert cli(small_overrides(tiny_data, runs) + ["--multirun", "arch=l1-64", "method=topk,dropout"], tmp_path).returncode == 0
    (runs / "fashion_mnist/l2-64/topk-k40/seed0").mkdir(parents=True)
    records.save_checkpoint(runs / "fashion_mnist/l2-64/topk-k40/seed0", {"x": 1})
    broken = runs / "fashion_mnist/l3-64/topk-k40/seed0"
    broken.mkdir(parents=True)
    (broken / records.RESULT_FILE).write_text("{")
    failed = runs / "fashion_mnist/l4-64/topk-k40/seed1"
    failed.mkdir(parents=True)
    records.write_json_atomic(failed / records.RESULT_FILE, {"schema_version": 1, "status": "failed", "dataset": "fashion_mnist",
                                                             "arch": "l4-64", "method": "topk", "seed": 1, "config": {}})
    assert status.main(["--runs", str(runs), "--seeds", "2"]) == 0
    rows = {r["method"]: r for r in status.table(status.scan(runs), 2)}
    assert rows["topk-k40"]["completed"] == 1 and rows["topk-k40"]["in progress"] == 1
    assert rows["topk-k40"]["damaged"] == 1 and rows["topk-k40"]["failed"] == 1
    assert rows["topk-k40"]["missing"] == 49 and rows["topk-k40"]["grid"] == 50
    assert rows["dropout-p0.4"]["missing"] == 49 and rows["complete-k170"]["missing"] == 50
    assert "topk-k40" in capsys.readouterr().out


def test_status_without_runs_folder(tmp_path, capsys):
    assert status.main(["--runs", str(tmp_path / "nope")]) == 2
    assert "no runs folder" in capsys.readouterr().err
