"""The thesis grid's method tags: derived from conf/method, settings a method file fixes included."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from asym_sweep import grid, records
from asym_sweep.config import CONF_DIR
from helpers import compose_config


@pytest.mark.parametrize("name", grid.METHODS)
def test_a_methods_grid_tag_is_the_folder_its_runs_get(name):
    """One owner: the tag the status, the publisher and the report look for is the run folder's."""
    assert grid.load_grid().tags[name] == records.run_tag(compose_config([f"method={name}"]))


def test_dropout_fixes_standardised_inputs_and_its_label_says_so():
    g = grid.load_grid()
    assert g.settings["dropout"] == {"dataset.scaling": "standard"} and g.baseline_tag == "dropout-p0.4+standard"
    assert g.label(g.baseline_tag) == "Symmetric dropout 0.4, standardised inputs"
    assert g.method_of("dropout-p0.4") is None  # [0, 1] pixels: the reading dropout_unit, not the grid's


def test_a_method_file_that_fixes_other_keys_is_refused(tmp_path: Path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    path = conf / "method" / "dropout.yaml"
    path.write_text(path.read_text() + "train:\n  epochs: 3\n")
    with pytest.raises(ValueError, match="dropout.yaml sets train.epochs"):
        grid.load_grid(conf)
    assert grid.settings_from_conf("topk", conf) == {}  # a plain method file fixes nothing else
