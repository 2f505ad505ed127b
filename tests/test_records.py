from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

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


RESULTS = Path(__file__).resolve().parents[1] / "results"


def _omegaconf_read(run_dir):
    return OmegaConf.to_container(OmegaConf.load(run_dir / records.HYDRA_DIR / records.CONFIG_FILE), resolve=True)


def test_read_run_config_reads_what_save_run_config_wrote_as_omegaconf_does(tmp_path):
    # Values a YAML reader could take for another type: numbers and dates in strings, YAML 1.1's
    # booleans, exponents, a missing value, nesting.
    cfg = OmegaConf.create({
        "a": "1e5", "b": 1e-30, "c": "2026-12-07", "d": "yes", "e": "on", "f": None, "g": [1, "2", 3.5, {"h": "0x1F"}],
        "i": {"j": "???x", "k": True, "l": "null", "m": 1e30, "n": "1.0", "o": "-.inf", "p": float("inf")},
        "q": "${b}", "r": "text: with colon", "s": "",
    })
    records.save_run_config(tmp_path, cfg, ["method=topk"])
    got = records.read_run_config(tmp_path)
    assert got == _omegaconf_read(tmp_path)
    assert got["a"] == "1e5" and got["q"] == 1e-30 and got["c"] == "2026-12-07" and got["i"]["p"] == float("inf")


def test_read_run_config_resolves_interpolations_and_rejects_damage(tmp_path):
    folder = tmp_path / records.HYDRA_DIR
    folder.mkdir()
    (folder / records.CONFIG_FILE).write_text("dataset:\n  epochs: 20\ntrain:\n  epochs: ${dataset.epochs}\n")
    assert records.read_run_config(tmp_path) == {"dataset": {"epochs": 20}, "train": {"epochs": 20}}
    for damaged in ("train: [unclosed", "- a list\n", "[1, 2]"):
        (folder / records.CONFIG_FILE).write_text(damaged)
        with pytest.raises(Exception):
            records.read_run_config(tmp_path)


@pytest.mark.skipif(not RESULTS.is_dir(), reason="no published results in this checkout")
def test_read_run_config_equals_omegaconf_on_published_records():
    folders = records.run_folders(RESULTS) + records.run_folders(RESULTS / "readings")
    with_interpolation = [f for f in folders if "${" in (f / records.HYDRA_DIR / records.CONFIG_FILE).read_text()]
    sample = with_interpolation[:10] + folders[::40]  # both paths, a few seconds
    assert with_interpolation and len(sample) > 20
    for folder in sample:
        assert records.read_run_config(folder) == _omegaconf_read(folder), folder
