"""The published reproduction in results/: every committed record complete, valid and of the
grid's settings (results/readings: of a reading, on a grid cell), and publishing never replaces one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import load_script
from omegaconf import OmegaConf

from asym_sweep import grid, records
from asym_sweep.config import identity

RESULTS = Path(__file__).resolve().parents[1] / "results"


def published(root: Path) -> list[Path]:
    return records.run_folders(root) if root.is_dir() else []


def check_record(folder: Path) -> records.Result:
    result, problem = records.read_result(folder)
    assert problem is None and result is not None, problem or f"{folder}: no result.json"
    assert result.completed and result.epochs == len(result.history)
    assert sorted(p.name for p in folder.iterdir()) == [records.HYDRA_DIR, records.RESULT_FILE], "records only"
    saved = records.read_run_config(folder)
    assert identity(saved) == identity(result.config), (
        f"{folder}: .hydra/config.yaml and result.json describe other runs"
    )
    dataset, arch, tag, seed = records.folder_key(folder)
    assert (result.dataset, result.arch, result.seed, records.run_tag(result.config)) == (
        dataset,
        arch,
        seed,
        tag,
    )
    assert result.environment.git_commit, f"{folder}: the code revision is not recorded"
    return result


def test_every_published_grid_record_is_complete_valid_and_of_the_grid():
    folders = published(RESULTS)
    assert folders, "results/ holds no published run"
    tags = set(grid.load_grid().tags.values())
    for folder in folders:
        result = check_record(folder)
        dataset, arch, tag, seed = records.folder_key(folder)
        # check_record: the saved config's run tag is the folder's, so a grid tag means the grid's settings
        assert tag in tags and arch in grid.ARCHS[dataset] and seed < 5
        assert result.epochs == 20


def test_every_published_reading_record_is_a_reading_on_a_grid_cell():
    publish = load_script("publish_results")
    readings, grid_tags = publish.reading_tags(), set(grid.load_grid().tags.values())
    for folder in published(RESULTS / "readings"):
        check_record(folder)
        dataset, arch, tag, seed = records.folder_key(folder)
        assert dataset == "fashion_mnist" and tag in readings and tag not in grid_tags
        # the panel's cells (seeds 0-2), or a reading's runs on other grid cells (dropout_standard's)
        assert (arch in grid.PANEL and seed < grid.PANEL_SEEDS) or (arch in grid.ARCHS[dataset] and seed < 5)


def test_every_published_rules_record_is_a_rules_experiment_run_on_the_panel():
    tags = set(grid.load_grid(methods=grid.rule_methods()).tags.values()) - set(grid.load_grid().tags.values())
    for folder in published(RESULTS / "rules"):
        result = check_record(folder)
        dataset, arch, tag, seed = records.folder_key(folder)
        assert dataset == "fashion_mnist" and tag in tags and arch in grid.PANEL and seed < grid.PANEL_SEEDS
        assert result.epochs == 20


def test_publishing_copies_records_only_and_never_replaces_one(tiny_data, tmp_path):
    from helpers import cli, small_overrides

    runs, out = tmp_path / "runs", tmp_path / "results"
    assert cli(small_overrides(tiny_data, runs), tmp_path).returncode == 0  # 1 epoch: not the grid's settings
    publish = load_script("publish_results")
    assert publish.publish(runs, out) == (0, 0, [])
    # A grid run: make the folder a grid cell by its recorded settings (epochs 20, full data).
    folder = next(iter(records.run_folders(runs)))
    result = json.loads((folder / records.RESULT_FILE).read_text())
    result["config"]["train"]["epochs"] = 20
    result["config"]["dataset"]["val_size"] = 5000
    result["epochs"], result["history"] = 20, result["history"] * 20
    grid_folder = runs / "fashion_mnist" / "l1-64" / "topk-k40" / "seed0"
    grid_folder.mkdir(parents=True)
    result["arch"] = result["config"]["arch"] = "l1-64"
    records.write_json_atomic(grid_folder / records.RESULT_FILE, result)
    (grid_folder / records.CHECKPOINT_FILE).write_bytes(b"x")  # stray files are not published
    assert publish.publish(runs, out) == (1, 0, [])
    dest = out / "fashion_mnist" / "l1-64" / "topk-k40" / "seed0"
    assert sorted(p.name for p in dest.iterdir()) == [records.HYDRA_DIR, records.RESULT_FILE]
    assert publish.publish(runs, out) == (0, 1, [])
    result["final"]["test_acc"] = 0.5
    records.write_json_atomic(grid_folder / records.RESULT_FILE, result)
    new, same, refused = publish.publish(runs, out)
    assert (new, same) == (0, 0) and refused and "kept" in refused[0]
    assert json.loads((dest / records.RESULT_FILE).read_text())["final"]["test_acc"] != 0.5


@pytest.mark.parametrize(
    "overrides, where",
    [
        (["method=dropout"], "fashion_mnist/l4-128/dropout-p0.4/seed3"),  # the grid's baseline
        (
            ["method=dropout", "dataset.scaling=standard"],
            "readings/fashion_mnist/l4-128/dropout-p0.4+standard/seed3",
        ),  # dropout_standard
        (["method=topk", "dataset.scaling=standard"], "readings/fashion_mnist/l4-128/topk-k40+standard/seed3"),
        (["method=topk", "train.batch_size=20"], None),  # no reading of conf/reading
        (["method=swat_80", "arch=l2-128", "seed=2"], "rules/fashion_mnist/l2-128/swat-period1-sparsity0.8/seed2"),
        (["method=swat_80", "seed=2"], None),  # the rules experiment runs on the panel only
        (["method=vrpge", "arch=l5-64", "seed=3"], None),  # ... on its 3 seeds
        (
            ["method=topk", "arch=l2-128", "seed=2"],
            "fashion_mnist/l2-128/topk-k40/seed2",
        ),  # a thesis method's: the grid's
    ],
)
def test_a_run_is_published_where_its_settings_say(overrides, where, tmp_path):
    from helpers import compose_config

    publish = load_script("publish_results")
    cfg = compose_config(["arch=l4-128", "seed=3", *overrides])
    config = OmegaConf.to_container(cfg, resolve=True)
    config.pop("hydra", None)
    folder = tmp_path / "runs" / records.run_subdir(cfg)
    thesis = set(grid.load_grid().tags.values())
    rules = set(grid.load_grid(methods=grid.rule_methods()).tags.values()) - thesis
    dest = publish.destination(folder, config, tmp_path / "out", thesis, publish.reading_tags(), rules)
    assert dest == (None if where is None else tmp_path / "out" / where)
