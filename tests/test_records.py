from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from asym_sweep import records

RESULTS_ROOT = Path(__file__).resolve().parents[1] / "results"


EPOCH = {"epoch": 1, "train_loss": 0.5, "val_loss": 0.4, "val_acc": 0.8, "test_loss": 0.45, "test_acc": 0.7}
EPOCH.update({"train_s": 1.0, "forward_s": 0.2, "backward_s": 0.3, "select_s": 0.1, "optimizer_s": 0.1})
ENVIRONMENT = {"torch": "2.13.0", "python": "3.11.7", "device": "cpu", "device_name": "x86_64", "threads": 2}
ENVIRONMENT.update({"malloc_keeps_freed_memory": True, "host": "vm", "data_source": "torchvision"})


def completed(**changes):
    """A completed record with every part a version-1 record must have (none of ADDED_KEYS)."""
    base = {
        "schema_version": records.SCHEMA_VERSION,
        "status": "completed",
        "dataset": "fashion_mnist",
        "arch": "l1-64",
        "method": "topk",
        "seed": 0,
        "config": {},
        "epochs": 1,
        "history": [dict(EPOCH)],
        "final": {k: EPOCH[k] for k in records.FINAL_KEYS},
        "timing": {key: 1.0 for key in records.TIMING_KEYS},
        "flops": {key: 2.0 for key in records.FLOP_KEYS},
        "environment": dict(ENVIRONMENT),
    }
    base.update(changes)
    return base


def test_atomic_write_roundtrip_leaves_no_temp_files(tmp_path):
    records.write_json_atomic(tmp_path / records.RESULT_FILE, completed())
    data, problem = records.read_result(tmp_path)
    assert problem is None and data.final["val_acc"] == 0.8
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
        (json.dumps(completed(seed="0")), "malformed 'seed'"),
        (json.dumps(completed(seed=True)), "malformed 'seed'"),
        (json.dumps(completed(timing={"backward_s": 1.0})), "missing timing.'select_s'"),
        (json.dumps(completed(environment=None)), "missing 'environment'"),
        (json.dumps(completed(history=[{"epoch": 1}])), "history entry without train_loss"),
        (json.dumps(completed(timing={key: float("nan") for key in records.TIMING_KEYS})), "non-finite timing"),
    ],
)
def test_damaged_results_are_reported_not_trusted(tmp_path, text, reason):
    (tmp_path / records.RESULT_FILE).write_text(text)
    data, problem = records.read_result(tmp_path)
    assert data is None and reason in problem


def test_a_version_1_record_without_the_added_keys_reads_them_as_none():
    result = records.Result.from_json(completed())
    assert result.dropout_at is None and result.environment.cpu is None and result.environment.jobs is None
    assert all(key.startswith(("dropout_at", "history[].", "environment.")) for key in records.ADDED_KEYS)
    assert "environment.compiled_fused_backward" in records.ADDED_KEYS and "environment.host" not in records.ADDED_KEYS


def test_the_record_is_written_as_it_is_read():
    data = completed(dropout_at="hidden", environment={**ENVIRONMENT, "jobs": 2, "cpu": "AMD EPYC 7B13"})
    result = records.Result.from_json(data)
    assert result.to_json() == data and records.Result.from_json(result.to_json()) == result
    assert result.timing.backward_s == 1.0 and result.flops.ratio_to_dense == 2.0 and result.environment.jobs == 2


def test_a_failed_record_needs_only_who_it_is(tmp_path):
    cfg = OmegaConf.create(
        {"dataset": {"name": "fashion_mnist"}, "arch": "l1-64", "method": {"name": "topk"}, "seed": 3}
    )
    records.write_result(tmp_path, records.failed_result(cfg, RuntimeError("loss is nan")))
    result, problem = records.read_result(tmp_path)
    assert problem is None and not result.completed and result.error == "RuntimeError: loss is nan"
    assert result.timing is None and result.seed == 3
    assert set(json.loads((tmp_path / records.RESULT_FILE).read_text())) == {
        "schema_version",
        "status",
        "dataset",
        "arch",
        "method",
        "seed",
        "config",
        "error",
    }


@pytest.mark.skipif(not RESULTS_ROOT.is_dir(), reason="no published results in this checkout")
def test_every_published_record_reads_and_writes_back_unchanged():
    # Schema 1 as published (results/: the grid, the readings, the rules): nothing read is lost.
    for path in sorted(RESULTS_ROOT.rglob(records.RESULT_FILE)):
        data = json.loads(path.read_text())
        assert records.Result.from_json(data).to_json() == data, path


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
    cfg = OmegaConf.create(
        {
            "a": "1e5",
            "b": 1e-30,
            "c": "2026-12-07",
            "d": "yes",
            "e": "on",
            "f": None,
            "g": [1, "2", 3.5, {"h": "0x1F"}],
            "i": {"j": "???x", "k": True, "l": "null", "m": 1e30, "n": "1.0", "o": "-.inf", "p": float("inf")},
            "q": "${b}",
            "r": "text: with colon",
            "s": "",
        }
    )
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
