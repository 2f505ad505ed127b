from __future__ import annotations

import json

import pytest

from asym_sweep import records


def completed(**changes):
    base = {
        "schema_version": records.SCHEMA_VERSION,
        "status": "completed",
        "dataset": "fashion_mnist",
        "arch": "l1-64",
        "method": "topk",
        "seed": 0,
        "config": {},
        "epochs": 1,
        "history": [{"epoch": 1}],
        "final": {"val_acc": 0.8, "test_acc": 0.7},
        "timing": {"backward_s": 1.0},
        "flops": {},
    }
    base.update(changes)
    return base


def test_atomic_write_roundtrip_leaves_no_temp_files(tmp_path):
    records.write_json_atomic(tmp_path / records.RESULT_FILE, completed())
    data, problem = records.read_result(tmp_path)
    assert problem is None and data["final"]["val_acc"] == 0.8
    assert [p.name for p in tmp_path.iterdir()] == [records.RESULT_FILE]


@pytest.mark.parametrize(
    "text,reason",
    [
        ('{"status": "compl', "unreadable"),
        (json.dumps(completed(status="weird")), "unknown status"),
        (json.dumps(completed(history=[])), "0 epochs of history"),
        (json.dumps(completed(final={"val_acc": 7, "test_acc": 0.5})), "final.val_acc"),
        (json.dumps(completed(schema_version=99)), "schema_version"),
        ("[]", "not a JSON object"),
    ],
)
def test_damaged_results_are_reported_not_trusted(tmp_path, text, reason):
    (tmp_path / records.RESULT_FILE).write_text(text)
    data, problem = records.read_result(tmp_path)
    assert data is None and reason in problem


def test_checkpoint_damage_is_detected(tmp_path):
    records.save_checkpoint(tmp_path, {"some": "identity"}, 1, {"model": {}})
    assert records.load_checkpoint(tmp_path, ("model",))[1] is None
    assert "incomplete" in records.load_checkpoint(tmp_path, ("model", "optimizer"))[1]
    (tmp_path / records.CHECKPOINT_FILE).write_bytes(b"\x80garbage")
    assert "unreadable" in records.load_checkpoint(tmp_path)[1]
    assert records.load_checkpoint(tmp_path / "none") == (None, None)


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / records.RESULT_FILE
    records.write_json_atomic(path, completed())

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(records.os, "replace", boom)
    with pytest.raises(OSError):
        records.write_json_atomic(path, completed(seed=5))
    assert json.loads(path.read_text())["seed"] == 0
    assert [p.name for p in tmp_path.iterdir()] == [records.RESULT_FILE]
