"""The thesis grid's method tags: derived from conf/method, settings a method file fixes included."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import compose_config, compose_with_hydra
from omegaconf import OmegaConf

from asym_sweep import grid, records
from asym_sweep.config import CONF_DIR


@pytest.mark.parametrize("name", grid.METHODS)
def test_a_methods_grid_tag_is_the_folder_its_runs_get(name):
    """One owner: the tag the status, the publisher and the report look for is the run folder's."""
    assert grid.load_grid().tags[name] == records.run_tag(compose_config([f"method={name}"]))


def test_every_method_takes_the_experiment_wide_input_scaling():
    # One protocol: no method file fixes an experiment-wide option (docs/methods.md).
    g = grid.load_grid()
    assert all(not set(g.settings.get(name, {})) & set(grid.EXPERIMENT_WIDE) for name in grid.METHODS)
    assert g.baseline_tag == "dropout-p0.4" and g.label(g.baseline_tag) == "Symmetric dropout 0.4"
    assert g.method_of("dropout-p0.4+standard") is None  # the reading dropout_standard, not the grid's
    assert g.same_cost_tags["dropout-p0.4+standard"] == "dropout-p0.4"  # its timings stand for the grid's


def test_a_method_file_that_fixes_a_setting_gets_it_in_its_tag_and_label(tmp_path: Path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    path = conf / "method" / "dropout.yaml"
    path.write_text(path.read_text() + "dataset:\n  scaling: standard\n")
    g = grid.load_grid(conf)
    assert g.settings["dropout"] == {"dataset.scaling": "standard"} and g.baseline_tag == "dropout-p0.4+standard"
    assert g.label(g.baseline_tag) == "Symmetric dropout 0.4, standardised inputs"
    assert g.time_baselines == ("dropout-p0.4+standard", "dropout-p0.4")


def test_a_method_file_that_fixes_other_keys_is_refused(tmp_path: Path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    path = conf / "method" / "dropout.yaml"
    path.write_text(path.read_text() + "train:\n  epochs: 3\n")
    with pytest.raises(ValueError, match="dropout.yaml sets train.epochs"):
        grid.load_grid(conf)
    assert grid.settings_from_conf("topk", conf) == {}  # a plain method file fixes nothing else


def test_the_rules_experiment_holds_every_registered_rule_and_each_method_file_once():
    from asym_sweep.rules import list_rules

    names = grid.rule_methods()
    assert sorted(names) == sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))
    rules = {str(grid.method_node(n).rule) for n in names}
    assert rules == set(list_rules()) and len(list_rules()) == 12
    tags = grid.load_grid(methods=names).tags
    assert len(set(tags.values())) == len(names), "two method files would share run folders"
    assert {tags[m] for m in grid.METHODS} == set(grid.load_grid().tags.values())  # the grid's own runs


def test_a_registered_rule_without_a_method_file_stops_the_rules_experiment(tmp_path: Path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    for name in ("swat", "swat_80"):
        (conf / "method" / f"{name}.yaml").unlink()
    with pytest.raises(ValueError, match="registered rule.* swat have no conf/method file"):
        grid.rule_methods(conf)


def test_the_rules_preset_sweeps_the_panel_seeds_and_the_registrys_methods():
    cfg = compose_with_hydra(["+experiment=rules"])
    params = OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=True)
    assert params["method"].split(",") == list(grid.rule_methods())
    assert params["arch"].split(",") == list(grid.PANEL) and params["seed"] == f"range(0,{grid.PANEL_SEEDS})"
    assert cfg.train.epochs == 20 and cfg.hydra.launcher._target_.endswith("JoblibLauncher")
