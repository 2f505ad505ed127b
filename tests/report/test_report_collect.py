import json
from pathlib import Path

from synthetic import DROPOUT, write_thesis_run

from asym_sweep import records
from asym_sweep.report.collect import collect


def test_one_row_per_run_and_per_epoch(tmp_path: Path) -> None:
    write_thesis_run(tmp_path, "topk-k40", seed=0, epochs=3)
    write_thesis_run(tmp_path, "topk-k40", seed=1, epochs=3)
    write_thesis_run(tmp_path, DROPOUT, seed=0, epochs=3)
    c = collect(tmp_path)
    assert len(c.runs) == 3 and len(c.epochs) == 9
    # 3 epochs is not the reference setup (20): the settings are part of the tag, as in the folder names.
    assert set(c.runs["method_tag"]) == {"topk-k40+e3", f"{DROPOUT}+e3"}
    assert c.problems == [] and c.in_progress == []


def test_failed_damaged_and_unfinished_runs_are_accounted_for(tmp_path: Path) -> None:
    write_thesis_run(tmp_path, "topk-k40", seed=0)
    write_thesis_run(tmp_path, "topk-k40", seed=1, status="failed")
    damaged = write_thesis_run(tmp_path, "topk-k40", seed=2)
    (damaged / records.RESULT_FILE).write_text("{ not json")
    unfinished = tmp_path / "fashion_mnist" / "l1-64" / "topk-k40" / "seed3"
    unfinished.mkdir()
    (unfinished / records.CHECKPOINT_FILE).write_bytes(b"x")
    (tmp_path / "fashion_mnist" / "l1-64" / "topk-k40" / "seed4").mkdir()  # empty folder: nothing to say
    c = collect(tmp_path)
    assert sorted(c.runs["status"]) == ["completed", "failed"]
    failed = c.runs[c.runs["status"] == "failed"].iloc[0]
    assert (failed["depth"], failed["width"], failed["method_tag"]) == (1, 64, "topk-k40")
    assert len(c.problems) == 1 and "seed2" in c.problems[0] and "unreadable" in c.problems[0]
    assert c.in_progress == [str(unfinished)]
    assert len(c.epochs) == 20  # only the completed run's epochs


def test_saved_hydra_config_is_preferred(tmp_path: Path) -> None:
    run = write_thesis_run(tmp_path, "topk-k40", lr=0.001)
    (run / ".hydra" / "config.yaml").write_text(
        (run / ".hydra" / "config.yaml").read_text().replace("lr: 0.001", "lr: 0.005")
    )
    assert collect(tmp_path).runs["lr"].iloc[0] == 0.005


def test_unreadable_hydra_config_falls_back_and_says_so(tmp_path: Path) -> None:
    run = write_thesis_run(tmp_path, "topk-k40", lr=0.002)
    (run / ".hydra" / "config.yaml").write_text("train: [unclosed")
    c = collect(tmp_path)
    assert c.runs["lr"].iloc[0] == 0.002
    assert len(c.problems) == 1 and "config.yaml" in c.problems[0]


def test_settings_ignore_seed_but_not_training_settings(tmp_path: Path) -> None:
    write_thesis_run(tmp_path, "topk-k40", seed=0)
    write_thesis_run(tmp_path, "topk-k40", seed=1)
    write_thesis_run(tmp_path, "topk-k40", seed=2, lr=0.01)
    settings = collect(tmp_path).runs.sort_values("seed")["settings"].tolist()
    assert settings[0] == settings[1] != settings[2]
    assert json.loads(settings[0])["train"]["optim"]["lr"] == 0.001
