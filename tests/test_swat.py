"""SWAT and SAW against a straightforward reference ("Sparse Weight Activation Training", Algorithm 1), in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from asym_sweep.selection import keep_count as _keep_share
from asym_sweep.sparse import make_rule, sparse_linear


def keep_count(sparsity: float, n: int) -> int:
    return _keep_share(1.0 - sparsity, n)


def ref_topk(v: torch.Tensor, sparsity: float, scope: str) -> torch.Tensor:
    """Keep the ceil((1 - sparsity) n) largest magnitudes: of the whole tensor, or of each row."""
    if scope == "batch":
        keep = keep_count(sparsity, v.numel())
        order = torch.argsort(v.abs().flatten(), descending=True, stable=True)
        mask = torch.zeros(v.numel(), dtype=v.dtype)
        mask[order[:keep]] = 1
        return v * mask.view_as(v)
    keep = keep_count(sparsity, v.shape[1])
    order = torch.argsort(v.abs(), dim=1, descending=True, stable=True)
    mask = torch.zeros_like(v)
    for r in range(v.shape[0]):
        mask[r, order[r, :keep]] = 1
    return v * mask


def data(shape, seed=0):
    batch, n_in, n_out = shape
    gen = torch.Generator().manual_seed(seed)
    make = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    return make(batch, n_in), make(n_out, n_in), make(n_out), make(batch, n_out)


def grads(method, params, scope, x, w, b, g):
    x, w, b = (t.clone().requires_grad_(True) for t in (x, w, b))
    y = sparse_linear(x, w, b, method=method, scope=scope, **params)
    y.backward(g)
    return y, x.grad, w.grad, b.grad


SHAPES = [(1, 5, 4), (7, 13, 11), (32, 64, 48), (3, 1, 1)]


@pytest.mark.parametrize("method", ["swat", "saw"])
@pytest.mark.parametrize("scope", ["batch", "sample"])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.7, 0.95])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_algorithm_1(method, scope, sparsity, shape):
    x, w, b, g = data(shape, seed=hash((method, scope, sparsity, shape)) % 2**31)
    y, gx, gw, gb = grads(method, {"sparsity": sparsity}, scope, x, w, b, g)
    w_k, x_k = ref_topk(w, sparsity, scope), ref_topk(x, sparsity, scope)
    forward_w = w_k if method == "swat" else w
    torch.testing.assert_close(y, F.linear(x, forward_w, b), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, g @ w_k, rtol=1e-12, atol=1e-12)  # dense g, top-K% weights
    torch.testing.assert_close(gw, g.t() @ x_k, rtol=1e-12, atol=1e-12)  # dense g, top-K% activations
    assert torch.equal(gb, g.sum(0))  # the output gradient is not sparsified


def test_saw_forward_is_exactly_dense():
    x, w, b, _ = data((50, 64, 32))
    assert torch.equal(sparse_linear(x, w, b, method="saw", sparsity=0.9), F.linear(x, w, b))


@pytest.mark.parametrize("scope", ["batch", "sample"])
def test_swat_forward_uses_exactly_the_kept_weights(scope):
    x, w, b, _ = data((20, 30, 16))
    rule = make_rule("swat", scope=scope, sparsity=0.7)
    used = rule.forward_weight(w)
    kept = used != 0
    expected = keep_count(0.7, w.numel()) if scope == "batch" else 16 * keep_count(0.7, 30)
    assert int(kept.sum()) == expected
    assert torch.equal(used[kept], w[kept])
    # Every kept weight is at least as large as every dropped one (per row for "sample").
    if scope == "batch":
        assert w.abs()[kept].min() >= w.abs()[~kept].max()
    else:
        for r in range(16):
            assert w[r].abs()[kept[r]].min() >= w[r].abs()[~kept[r]].max()
    assert torch.equal(sparse_linear(x, w, b, method="swat", scope=scope, sparsity=0.7), F.linear(x, used, b))


def test_swat_really_differs_from_dense():
    x, w, b, g = data((8, 20, 10))
    _, gx, gw, _ = grads("swat", {"sparsity": 0.7}, "batch", x, w, b, g)
    _, dx, dw, _ = grads("dense", {}, "batch", x, w, b, g)
    assert not torch.allclose(gx, dx) and not torch.allclose(gw, dw)


def test_threshold_reuse_recomputes_only_every_period_steps():
    gen = torch.Generator().manual_seed(4)
    rule = make_rule("saw", scope="batch", sparsity=0.7, period=3)
    w0 = torch.randn(10, 20, generator=gen)
    rule.start_step(0)
    rule.sparsify("weight", w0)
    t0 = rule.thresholds["weight"]
    assert t0 == pytest.approx(float(w0.abs().flatten().sort(descending=True).values[keep_count(0.7, 200) - 1]))
    for step in (1, 2):  # reuse: keep |w| >= t0, however many that is
        rule.start_step(step)
        w = torch.randn(10, 20, generator=gen) * (1 + step)
        out = rule.sparsify("weight", w)
        assert torch.equal(out, torch.where(w.abs() >= t0, w, torch.zeros(())))
        assert rule.thresholds["weight"] == t0 and rule.kept["weight"] == int((w.abs() >= t0).sum())
    rule.start_step(3)
    w3 = torch.randn(10, 20, generator=gen) * 5
    out = rule.sparsify("weight", w3)
    assert int((out != 0).sum()) == keep_count(0.7, 200) and rule.thresholds["weight"] != t0


def test_threshold_state_round_trips():
    rule = make_rule("swat", scope="batch", sparsity=0.5, period=10)
    rule.start_step(0)
    rule.sparsify("weight", torch.randn(6, 6))
    other = make_rule("swat", scope="batch", sparsity=0.5, period=10)
    other.load_state_dict(rule.state_dict())
    v = torch.randn(6, 6)
    assert torch.equal(other.sparsify("weight", v), rule.sparsify("weight", v))


@pytest.mark.parametrize(
    "params,scope,message",
    [
        ({"sparsity": 1.0}, "batch", "sparsity must be in"),
        ({"sparsity": -0.1}, "batch", "sparsity must be in"),
        ({"sparsity": 0.7, "period": 0}, "batch", "period must be >= 1"),
        ({"sparsity": 0.7, "period": 1.5}, "batch", "period must be a positive integer"),
        ({"sparsity": 0.7, "period": 5}, "sample", "needs scope=batch"),
        ({"sparsity": 0.7, "k": 3}, "batch", "does not take k"),
    ],
)
def test_bad_parameters(params, scope, message):
    with pytest.raises(ValueError, match=message):
        make_rule("swat", scope=scope, **params)


def test_flops_count_the_kept_entries():
    swat, saw = make_rule("swat", sparsity=0.7), make_rule("saw", sparsity=0.7)
    batch, n_in, n_out = 10, 20, 5
    kept_w, kept_x = keep_count(0.7, n_in * n_out), keep_count(0.7, batch * n_in)
    assert swat.forward_madds(batch, n_in, n_out) == batch * kept_w
    assert saw.forward_madds(batch, n_in, n_out) == batch * n_in * n_out
    for rule in (swat, saw):
        assert rule.backward_madds(batch, n_in, n_out, input_grad=True) == n_out * kept_x + batch * kept_w
        assert rule.backward_madds(batch, n_in, n_out, input_grad=False) == n_out * kept_x


def test_keep_count_rounds_before_the_ceiling():
    assert keep_count(0.7, 10) == 3  # (1 - 0.7) * 10 is 3.0000000000000004 in floats
    assert keep_count(0.99, 10) == 1 and keep_count(0.0, 7) == 7


@pytest.mark.parametrize("scope,period", [("sample", 1), ("batch", 1), ("batch", 2)])
def test_activations_are_ranked_by_value_when_told_they_are_nonnegative(scope: str, period: int) -> None:
    """The flag is really used (tests/test_model.py checks it changes nothing on real inputs)."""
    from asym_sweep.sparse import Needs

    rule = make_rule("swat", scope=scope, sparsity=0.5, period=period)
    x, w, g = torch.tensor([[-100.0, 1.0, 2.0, 3.0]]), torch.ones(1, 4), torch.ones(1, 1)
    for step in range(2):  # with period 2 the second step reuses the first one's threshold
        rule.start_step(step)
        told = rule.backward(g, x, w, Needs(False, True, True, True), None).weight
        assert told.tolist() == [[0.0, 0.0, 2.0, 3.0]]
    rule = make_rule("swat", scope=scope, sparsity=0.5, period=period)
    rule.start_step(0)
    assert rule.backward(g, x, w, Needs(False, True, True), None).weight.tolist() == [[-100.0, 0.0, 0.0, 3.0]]
