"""The readings of issue 17 as options, each against an independent float64 reference (masks on
dense products), both scopes, k below, at and beyond the width; and every reading file."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import compose_config

from asym_sweep.config import CONF_DIR, validate
from asym_sweep.data import load_splits
from asym_sweep.engine.autograd import apply_rule
from asym_sweep.grid import PANEL, PANEL_SEEDS, readings
from asym_sweep.methods import MethodConfig
from asym_sweep.model import build_mlp, parse_arch
from asym_sweep.records import run_tag
from asym_sweep.rules import make_rule


def top_mask(v: torch.Tensor, k: int, scope: str) -> torch.Tensor:
    """0/1 mask of the k largest magnitudes per row ("sample") or by column sums ("batch")."""
    if scope == "batch":
        order = torch.argsort(v.abs().sum(0), descending=True, stable=True)
        mask = torch.zeros(v.shape[1], dtype=v.dtype)
        mask[order[:k]] = 1
        return mask.expand_as(v).clone()
    order = torch.argsort(v.abs(), dim=1, descending=True, stable=True)
    mask = torch.zeros_like(v)
    for r in range(v.shape[0]):
        mask[r, order[r, :k]] = 1
    return mask


def run(rule, x, w, b, g):
    x, w, b = (t.clone().requires_grad_(True) for t in (x, w, b))
    y = apply_rule(rule, x, w, b)
    y.backward(g)
    assert torch.equal(y, F.linear(x, w, b))
    return x.grad, w.grad, b.grad


def data(batch=7, n_in=13, n_out=11, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(*s, generator=gen, dtype=torch.float64)
        for s in ((batch, n_in), (n_out, n_in), (n_out,), (batch, n_out))
    ]


def close(got, want):
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


SCOPES = ["batch", "sample"]
KS = [2, 11, 50]  # below the width, at it (n_out = 11), beyond it


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("x_scope", SCOPES)
@pytest.mark.parametrize("k", KS)
def test_partial_selects_sensitivities_and_inputs_in_their_own_scopes(scope, x_scope, k):
    x, w, b, g = data()
    gs = g * top_mask(g, k, scope)
    xs = x * top_mask(x, k + 3, x_scope)
    want = (gs @ w, gs.t() @ xs, gs.sum(0))
    close(run(make_rule("partial", scope=scope, k1=k, k2=k + 3, x_scope=x_scope), x, w, b, g), want)


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("x_scope", SCOPES)
@pytest.mark.parametrize("k", KS)
def test_complete_rows_reading_in_every_scope_pair(scope, x_scope, k):
    x, w, b, g = data()
    gs = g * top_mask(g, k, scope)
    xs = x * top_mask(x, k, x_scope)
    w_tilde = w * top_mask(w, k, "sample")  # W~: each neuron's k largest incoming weights
    want = (gs @ w_tilde, gs.t() @ xs, gs.sum(0))
    close(run(make_rule("complete", scope=scope, k=k, x_scope=x_scope), x, w, b, g), want)


def union_mask(g: torch.Tensor, w: torch.Tensor, k: int, scope: str) -> torch.Tensor:
    """eq. 8.3 read as a union: topk(g)'s neurons and the k of largest summed |incoming weight|."""
    by_weight = torch.zeros(w.shape[0], dtype=g.dtype)
    by_weight[torch.argsort(w.abs().sum(1), descending=True, stable=True)[:k]] = 1
    return torch.clamp(top_mask(g, k, scope) + by_weight, max=1)


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("x_scope", SCOPES)
@pytest.mark.parametrize("k", KS)
def test_complete_union_readings(scope, x_scope, k):
    x, w, b, g = data()
    gs = g * union_mask(g, w, k, scope)
    x_mask = top_mask(x, k, x_scope)
    xs = x * x_mask
    close(
        run(make_rule("complete", scope=scope, k=k, x_scope=x_scope, neurons="union"), x, w, b, g),
        (gs @ w, gs.t() @ xs, gs.sum(0)),
    )
    # union_params (eq. 8.5): the input gradient only at the kept inputs
    close(
        run(make_rule("complete", scope=scope, k=k, x_scope=x_scope, neurons="union_params"), x, w, b, g),
        ((gs @ w) * x_mask, gs.t() @ xs, gs.sum(0)),
    )


def test_the_union_holds_more_neurons_than_the_sensitivity_alone():
    x, w, b, g = data(n_out=30)
    _, gw_rows, _ = run(make_rule("complete", k=5), x, w, b, g)
    _, gw_union, _ = run(make_rule("complete", k=5, neurons="union"), x, w, b, g)
    assert int((gw_rows.abs().sum(1) != 0).sum()) == 5 < int((gw_union.abs().sum(1) != 0).sum()) <= 10


@pytest.mark.parametrize("bad", [{"x_scope": "layer"}, {"neurons": "all"}])
def test_bad_readings_are_value_errors(bad):
    with pytest.raises(ValueError):
        make_rule("complete", k=3, **bad)


def test_dropout_after_the_last_hidden_layer_only():
    arch = parse_arch("l3-16")
    rules = MethodConfig("d", "dense").layer_rules(4)
    model = build_mlp(arch, rules, dropout=0.5, seed=0, dropout_at="last")
    assert model.dropped == [False, False, True]
    assert build_mlp(arch, rules, dropout=0.5, seed=0).dropped == [True, True, True]
    x = torch.rand(6, 784)
    torch.manual_seed(4)
    out = model(x)
    torch.manual_seed(4)
    h = x
    for layer in model.layers[:2]:
        h = F.relu(F.linear(h, layer.weight, layer.bias))
    h = F.dropout(F.relu(F.linear(h, model.layers[2].weight, model.layers[2].bias)), 0.5, True)
    assert torch.equal(out, F.linear(h, model.layers[3].weight, model.layers[3].bias))
    with pytest.raises(ValueError, match="dropout_at"):
        build_mlp(arch, rules, dropout=0.5, dropout_at="first")


def test_standardised_inputs_use_the_training_split_statistics(tiny_data):
    unit = load_splits("fashion_mnist", str(tiny_data), val_size=50)
    std = load_splits("fashion_mnist", str(tiny_data), val_size=50, scaling="standard")
    mean, sd = unit.train_x.mean(), unit.train_x.std()
    torch.testing.assert_close(std.train_x.mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(std.train_x.std(), torch.tensor(1.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(std.val_x, (unit.val_x - mean) / sd)  # validation and test with the training split's
    torch.testing.assert_close(std.test_x, (unit.test_x - mean) / sd)


def test_reading_tags():
    assert (
        MethodConfig("partial", "partial", {"k1": 40, "k2": 200, "x_scope": "sample"}).tag()
        == "partial-k1_40-k2_200-x_scope_sample"
    )
    assert MethodConfig("partial", "partial", {"k1": 40, "k2": 200, "x_scope": None}).tag() == "partial-k1_40-k2_200"
    assert MethodConfig("dropout", "dense", dropout=0.4, dropout_at="last").tag() == "dropout-p0.4-at_last"
    assert run_tag(compose_config(["dataset.scaling=standard"])) == "topk-k40+standard"


@pytest.mark.parametrize("reading", readings())
def test_every_reading_composes_validates_and_has_its_own_folder(reading):
    cfg = compose_config([f"+reading={reading}"])
    validate(cfg)
    method = reading.split("_")[0]
    assert cfg.method.name == method
    default = run_tag(compose_config([f"method={method}"]))
    assert (run_tag(cfg) == default) == (reading == method), "a reading must not share its default's folder"


def test_every_reading_has_a_distinct_folder_and_the_panel_is_the_issues():
    tags = [run_tag(compose_config([f"+reading={r}"])) for r in readings()]
    assert len(set(tags)) == len(tags) == len(list((CONF_DIR / "reading").glob("*.yaml")))
    archs = [parse_arch(a) for a in PANEL]
    assert len(PANEL) >= 6 and sum(a.width == 1024 for a in archs) >= 2
    assert {a.depth for a in archs} >= {1, 2, 3, 5} and {a.width for a in archs} >= {64, 128, 256, 512, 1024}


def test_the_panel_preset_runs_the_seeds_the_readings_page_counts():
    cfg = compose_config(["+experiment=readings"])
    assert cfg.n_seeds == PANEL_SEEDS == 3
