"""scripts/bench_backward.py runs end to end (tiny sizes; nothing here is timed)."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import load_script


def test_table_and_json_for_every_kind_of_method(tmp_path, capsys):
    bench = load_script("bench_backward")
    methods = ["plain", "plain-dropout", "dense", "dropout", "topk", "swat", "vrpge"]
    code = bench.main(
        [
            "--archs",
            "l1-64",
            "--methods",
            *methods,
            "--warmup",
            "1",
            "--rounds",
            "3",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "bwd/dense" in out and "vrpge" in out
    (path,) = tmp_path.glob("bench-*.json")
    rows = {r["method"]: r for r in json.loads(path.read_text())["rows"]}
    assert set(rows) == set(methods)
    assert rows["dense"]["bwd_vs_dense"] == 1.0 and rows["plain"]["flop_ratio"] == 1.0
    assert rows["topk"]["flop_ratio"] == pytest.approx((40 * 784 + 2 * 10 * 64) / (64 * 784 + 2 * 10 * 64))
    assert rows["swat"]["flop_ratio"] < 0.5  # 70% of weights and activations dropped
    assert all(r["step_ms"] > 0 for r in rows.values())
    # dropout is compared with the nn.Linear MLP with nn.Dropout, the others with the plain one
    assert rows["dropout"]["step_vs_plain"] == pytest.approx(
        rows["dropout"]["step_ms"] / rows["plain-dropout"]["step_ms"]
    )
    assert rows["topk"]["step_vs_plain"] == pytest.approx(rows["topk"]["step_ms"] / rows["plain"]["step_ms"])


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    bench = load_script("bench_backward")
    assert bench.main(["--archs", "l0-5", "--out", str(tmp_path)]) == 2
    assert "bench: error:" in capsys.readouterr().err
    assert bench.main(["--methods", "nope", "--out", str(tmp_path)]) == 2
    assert "no method 'nope' in conf/method (there: complete, dropout," in capsys.readouterr().err
    assert bench.main(["--methods", "partial:x_scope=bogus", "--out", str(tmp_path)]) == 2
    assert "x_scope must be one of sample, batch or null" in capsys.readouterr().err
    assert bench.main(["--methods", "partial:k2", "--out", str(tmp_path)]) == 2
    assert "partial:k2: parameters are key=value, got 'k2'" in capsys.readouterr().err
    assert bench.main(["--rounds", "0", "--out", str(tmp_path)]) == 2
    assert "--rounds must be at least 1" in capsys.readouterr().err
    assert not list(tmp_path.glob("bench-*.json"))


def test_default_malloc_is_reported(tmp_path, capsys):
    bench = load_script("bench_backward")
    args = [
        "--archs",
        "l1-8",
        "--methods",
        "dense",
        "--warmup",
        "0",
        "--rounds",
        "1",
        "--threads",
        "1",
        "--out",
        str(tmp_path),
    ]
    assert bench.main([*args, "--default-malloc"]) == 0
    assert "default malloc" in capsys.readouterr().out


def test_bounds_add_the_two_lower_bounds_of_topk(tmp_path, capsys):
    bench = load_script("bench_backward")
    args = [
        "--archs",
        "l2-64",
        "--methods",
        "dense",
        "topk",
        "--bounds",
        "--warmup",
        "1",
        "--rounds",
        "2",
        "--threads",
        "1",
        "--out",
        str(tmp_path),
    ]
    assert bench.main(args) == 0
    (path,) = tmp_path.glob("bench-*.json")
    rows = {r["method"]: r for r in json.loads(path.read_text())["rows"]}
    assert set(rows) == {"dense", "topk", "topk-floor", "topk-products"}
    assert rows["topk-products"]["flop_ratio"] == rows["topk"]["flop_ratio"]


def test_products_bound_computes_topks_products_on_the_first_k_rows():
    import torch

    from asym_sweep.sparse import Needs

    bench = load_script("bench_backward")
    (rule,) = bench.bound_rules("topk-products", 1)
    g, x, w = torch.randn(5, 64), torch.randn(5, 32), torch.randn(64, 32)
    grads = rule.backward(g, x, w, Needs(True, True, True), None)
    assert torch.equal(grads.input, g[:, :40] @ w[:40])
    # no rows: every parameter gets a zero gradient (Adam's work as in training), nothing written
    assert grads.rows.numel() == 0 and grads.weight.shape == (0, 32) and grads.bias.shape == (0,)
    (floor,) = bench.bound_rules("topk-floor", 1)
    nothing = floor.backward(g, x, w, Needs(False, True, True), None)
    assert nothing.input is None and nothing.rows.numel() == 0


def test_a_reading_is_benched_with_its_parameters(tmp_path):
    """``partial:x_scope=sample``: conf/method's partial with one parameter replaced (issue 17's
    per-example input selection, benched against batch-scope partial)."""
    bench = load_script("bench_backward")
    case = bench.make_case("l1-16", "partial:x_scope=sample,k2=8", "batch", 4, bench.torch.device("cpu"), seed=0)
    rule = case.model.layers[0].rule
    assert (rule.x_scope, rule.k1, rule.k2) == ("sample", 40, 8)
    assert (
        bench.main(
            [
                "--archs",
                "l1-16",
                "--methods",
                "partial",
                "partial:x_scope=sample",
                "--warmup",
                "0",
                "--rounds",
                "1",
                "--threads",
                "1",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    (path,) = tmp_path.glob("bench-*.json")
    assert [r["method"] for r in json.loads(path.read_text())["rows"]] == ["partial", "partial:x_scope=sample"]


def test_pixels_come_from_the_dataset_or_say_they_are_synthetic(tmp_path, monkeypatch, capsys):
    bench = load_script("bench_backward")
    args = [
        "--archs",
        "l1-64",
        "--methods",
        "partial",
        "--warmup",
        "1",
        "--rounds",
        "2",
        "--threads",
        "1",
        "--out",
        str(tmp_path),
    ]
    monkeypatch.setenv("ASYM_SWEEP_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setattr(
        bench, "load_splits", lambda *a, **k: (_ for _ in ()).throw(bench.DataError("Fashion-MNIST not found"))
    )
    assert bench.main([*args, "--pixels", "dataset"]) == 2
    assert capsys.readouterr().err.strip() == "bench: error: Fashion-MNIST not found"
    assert not list(tmp_path.glob("bench-*.json"))
    assert bench.main(args) == 0
    assert "synthetic pixels (256 levels, uniform; no dataset: Fashion-MNIST not found)" in capsys.readouterr().out
    (path,) = tmp_path.glob("bench-*.json")
    assert json.loads(path.read_text())["pixels"].startswith("synthetic")


def test_dataset_pixels_are_the_first_training_images():
    bench = load_script("bench_backward")
    try:
        images, label = bench.pixel_source("dataset", 7)
    except bench.DataError:
        pytest.skip("Fashion-MNIST not found: set ASYM_SWEEP_DATA to its folder to run this test")
    assert images.shape[1] == 784 and len(images) >= 7 and label.startswith("Fashion-MNIST's first training images")
    levels = images[:7] * 255
    assert torch.equal(levels, levels.round()) and float(images.max()) <= 1.0
