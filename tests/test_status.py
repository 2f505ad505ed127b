"""``make status``: every grid cell in exactly one state; other settings apart (issue 15.6)."""

from __future__ import annotations

from helpers import compose_config, record_json
from omegaconf import OmegaConf

from asym_sweep import records, runlock, status


def write_result(runs, arch, tag, seed, overrides=(), state="completed", wall_s=1800.0, jobs=1):
    cfg = OmegaConf.to_container(compose_config([f"arch={arch}", f"seed={seed}", *overrides]), resolve=True)
    folder = runs / "fashion_mnist" / arch / tag / f"seed{seed}"
    result = record_json(cfg, state, timing={"wall_s": wall_s}, environment={"jobs": jobs})
    records.write_json_atomic(folder / records.RESULT_FILE, result)
    return folder


def test_every_cell_is_in_one_state_and_other_settings_stand_apart(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_result(runs, "l1-64", "topk-k40", 0)
    write_result(runs, "l1-64", "dropout-p0.4", 0, ["method=dropout"], jobs=2)
    # Dropout with standardised inputs: a reading (the grid's takes [0, 1] pixels), listed apart.
    write_result(
        runs, "l2-64", "dropout-p0.4+standard", 0, ["method=dropout", "dataset.scaling=standard"], wall_s=2232.0
    )
    # A 1-epoch run in the grid's own folder (made before settings were in folder names): not a grid run.
    write_result(runs, "l2-64", "topk-k40", 0, ["train.epochs=1"])
    write_result(runs, "l1-64", "topk-k40+e2", 1, ["train.epochs=2"])
    write_result(runs, "l4-64", "topk-k40", 1, state="failed")
    # Killed (kill -9): a checkpoint and nobody holding the lock. Interrupted, not also missing.
    killed = runs / "fashion_mnist/l3-64/topk-k40/seed0"
    records.save_checkpoint(killed, {}, 1, {})
    # Live: another launch holds the lock.
    live = runs / "fashion_mnist/l5-64/topk-k40/seed1"
    records.save_checkpoint(live, {}, 1, {})
    lock = runlock.RunLock(live)
    assert lock.acquire() is None
    broken = runs / "fashion_mnist/l1-128/topk-k40/seed0"
    broken.mkdir(parents=True)
    (broken / records.RESULT_FILE).write_text("{")
    try:
        assert status.main(["--runs", str(runs), "--seeds", "2"]) == 0
        rows = {r["method"]: r for r in status.table(status.scan(runs), 2)}
    finally:
        lock.release()
    topk = rows["topk-k40"]
    assert (topk["completed"], topk["running"], topk["interrupted"], topk["failed"], topk["damaged"]) == (1, 1, 1, 1, 1)
    assert topk["missing"] == 45 and topk["grid"] == 50
    for row in rows.values():
        assert (
            sum(row[s] for s in ("completed", "running", "interrupted", "failed", "damaged", "missing")) == row["grid"]
        )
    assert rows["dropout-p0.4"]["completed"] == 1 and rows["complete-k170"]["missing"] == 50
    out = capsys.readouterr().out
    assert "thesis grid: 2 of 200 runs completed" in out
    # 2 grid runs of 0.5 h, one of them beside a second job; the three off-grid runs add 0.5 + 0.5 + 0.62 h
    assert "machine time of the completed runs: grid 0.8 h (1.0 h of run time), all 2.4 h (2.6 h)" in out
    other = out.split("other settings")[1]
    assert "topk-k40+e2" in other and "l2-64" in other  # both shown apart, neither counted
    assert any("dropout-p0.4+standard" in line for line in other.splitlines())


def test_status_without_runs_folder(tmp_path, capsys):
    assert status.main(["--runs", str(tmp_path / "nope")]) == 2
    assert "no runs folder" in capsys.readouterr().err


def test_a_reader_that_leaves_early_is_no_error(tmp_path):
    """``make status | head -1``: the pipe closes under the writer. Here it is closed before the
    first write (deterministic): no traceback, exit 0."""
    import os
    import subprocess
    import sys

    write_result(tmp_path / "runs", "l1-64", "topk-k40", 0)
    r, w = os.pipe()
    os.close(r)
    proc = subprocess.run(
        [sys.executable, "-m", "asym_sweep.status", "--runs", str(tmp_path / "runs")],
        stdout=w,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    os.close(w)
    assert (proc.returncode, proc.stderr) == (0, "")
