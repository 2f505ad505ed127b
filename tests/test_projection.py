"""The projected time of a launch (projection.py): every job counted once, timed from finished
runs where there are any and from measured steps otherwise, nothing trained."""

from __future__ import annotations

import pytest
from helpers import TINY, cli, compose_config, small_overrides

from asym_sweep import projection, records


def test_job_overrides_are_the_sweepers_jobs_in_its_order():
    jobs = projection.job_overrides(
        {"arch": "l1-64,l2-64", "seed": "range(0,2)"}, ["method=topk,dropout", "train.epochs=1"]
    )
    assert len(jobs) == 8
    assert jobs[0] == ["arch=l1-64", "seed=0", "method=topk", "train.epochs=1"]
    assert jobs[1] == ["arch=l1-64", "seed=0", "method=dropout", "train.epochs=1"]


def test_a_finished_run_costs_nothing_and_its_settings_time_the_others(tiny_data, tmp_path):
    runs = tmp_path / "runs"
    assert cli(small_overrides(tiny_data, runs), tmp_path).returncode == 0
    done = compose_config(small_overrides(tiny_data, runs))
    walls = projection.completed_wall(runs)
    assert list(walls) == [("fashion_mnist", "l1-32", "topk-k40" + TINY)]
    assert projection.estimate(done, walls, {}, 1).source == "done"
    other_seed = compose_config(small_overrides(tiny_data, runs, seed=1))
    est = projection.estimate(other_seed, walls, {}, 1)
    ((wall, floor),) = walls[("fashion_mnist", "l1-32", "topk-k40" + TINY)]
    assert est.source == "records" and est.seconds == pytest.approx(wall)
    # The floor is the record's forward, optimizer and evaluation seconds.
    timing = records.read_result(records.run_dir(done))[0].timing
    assert est.floor == pytest.approx(floor) == pytest.approx(timing.forward_s + timing.optimizer_s + timing.eval_s)
    assert 0 < floor < wall


def test_without_records_a_job_is_measured_once_per_setting(tiny_data, tmp_path):
    measured: dict = {}
    cfg = compose_config(small_overrides(tiny_data, tmp_path / "none", **{"dataset.val_size": 5000}))
    first = projection.estimate(cfg, {}, measured, 1)
    assert first.source == "measured" and first.seconds > projection.START_S and len(measured) == 1
    assert 0 < first.floor < first.seconds - projection.START_S  # the backward is not part of it
    again = projection.estimate(
        compose_config(small_overrides(tiny_data, tmp_path / "none", seed=3, **{"dataset.val_size": 5000})),
        {},
        measured,
        1,
    )
    assert again.seconds == first.seconds and len(measured) == 1  # the same settings: measured once


def test_projection_only_prints_and_trains_nothing(tiny_data, tmp_path):
    runs = tmp_path / "runs"
    done = cli(
        small_overrides(tiny_data, runs) + ["--multirun", "arch=l1-16,l2-16", "seed=0,1", "projection=only"], tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "projection: 4 runs, 1 at a time" in done.stderr and "4 measured" in done.stderr
    assert not records.run_folders(runs) if runs.exists() else True


def test_render_aligns_the_columns_for_long_tags():
    p = projection.Projection(jobs=2)
    for tag, s in (("topk-k40", 3600.0), ("complete-k170-neurons_union_params", 7200.0)):
        p.add(tag, projection.Estimate(s, "measured"))
    lines = projection.render(p).splitlines()
    assert lines[0].startswith("projection: 2 runs, 2 at a time: 1.5 h (3.0 h of job time); 2 measured")
    assert [line.index(" runs") for line in lines[1:3]] == [lines[1].index(" runs")] * 2


def test_render_states_the_floor_only_where_there_is_one():
    p = projection.Projection(jobs=2)
    p.add("topk-k40", projection.Estimate(7200.0, "measured", floor=1800.0))
    p.add("dropout-p0.4", projection.Estimate(7200.0, "records", floor=1800.0))
    p.add("partial-k1_40-k2_200", projection.Estimate(0.0, "done"))
    lines = projection.render(p).splitlines()
    assert lines[0].startswith("projection: 3 runs, 2 at a time: 2.0 h (4.0 h of job time)")
    assert p.floor_hours == pytest.approx(0.5)
    assert lines[1].startswith("  of which 0.5 h forward passes, optimizer steps and evaluation")
    bare = projection.Projection(jobs=1)
    bare.add("topk-k40", projection.Estimate(60.0, "measured"))
    assert "of which" not in projection.render(bare)
