"""The backward rules against an independent mask-and-dense-product reference in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from asym_sweep.sparse import magnitude_keys, make_rule, sparse_linear, topk_columns, topk_rows

METHODS = {
    "dense": {},
    "topk": {"k": 3},
    "partial": {"k1": 3, "k2": 4},
    "complete": {"k": 3},
}


def ref_mask(v: torch.Tensor, k: int, scope: str) -> torch.Tensor:
    """0/1 mask of the top-k magnitudes: per row ("sample") or by column sums ("batch")."""
    if scope == "batch":
        order = torch.argsort(v.abs().sum(0), descending=True, stable=True)
        mask = torch.zeros(v.shape[1], dtype=v.dtype)
        mask[order[:k]] = 1
        return mask.expand_as(v)
    order = torch.argsort(v.abs(), dim=1, descending=True, stable=True)
    mask = torch.zeros_like(v)
    for r in range(v.shape[0]):
        mask[r, order[r, :k]] = 1
    return mask


def reference_grads(method, params, scope, x, w, g):
    gs, xs, wt = g, x, w
    if method == "topk":
        gs = g * ref_mask(g, params["k"], scope)
    elif method == "partial":
        gs = g * ref_mask(g, params["k1"], scope)
        xs = x * ref_mask(x, params["k2"], scope)
    elif method == "complete":
        gs = g * ref_mask(g, params["k"], scope)
        xs = x * ref_mask(x, params["k"], scope)
        wt = w * ref_mask(w, params["k"], "sample")  # W~: per output neuron
    grad_w = sum(torch.outer(gs[b], xs[b]) for b in range(g.shape[0]))
    return gs @ wt, grad_w, gs.sum(0)


def run_rule(method, params, scope, x, w, b, g):
    x = x.clone().requires_grad_(True)
    w = w.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    y = sparse_linear(x, w, b, method=method, scope=scope, **params)
    y.backward(g)
    return y, x.grad, w.grad, b.grad


SHAPES = [(1, 5, 4), (7, 13, 11), (32, 64, 48), (3, 1, 1), (9, 2, 17)]


@pytest.mark.parametrize("scope", ["sample", "batch"])
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kscale", ["one", "mid", "huge"])
def test_rule_matches_reference(method, scope, shape, kscale):
    batch, n_in, n_out = shape
    gen = torch.Generator().manual_seed(hash((method, scope, shape, kscale)) % 2**31)
    x = torch.randn(batch, n_in, generator=gen, dtype=torch.float64)
    w = torch.randn(n_out, n_in, generator=gen, dtype=torch.float64)
    b = torch.randn(n_out, generator=gen, dtype=torch.float64)
    g = torch.randn(batch, n_out, generator=gen, dtype=torch.float64)
    scale = {"one": lambda v: 1, "mid": lambda v: v, "huge": lambda v: 10_000}[kscale]
    params = {name: scale(v) for name, v in METHODS[method].items()}

    y, gx, gw, gb = run_rule(method, params, scope, x, w, b, g)
    rx, rw, rb = reference_grads(method, params, scope, x, w, g)

    assert torch.equal(y, F.linear(x, w, b))
    torch.testing.assert_close(gx, rx, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gw, rw, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gb, rb, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scope", ["sample", "batch"])
@pytest.mark.parametrize("method", ["topk", "partial", "complete"])
def test_sparse_rule_really_drops_entries(method, scope):
    """Guard against a reference bug hiding a dense rule: sparse grads differ from dense ones."""
    gen = torch.Generator().manual_seed(3)
    x, w, b = torch.randn(4, 20, generator=gen), torch.randn(30, 20, generator=gen), torch.zeros(30)
    g = torch.randn(4, 30, generator=gen)
    _, gx, gw, gb = run_rule(method, METHODS[method], scope, x, w, b, g)
    _, dx, dw, db = run_rule("dense", {}, scope, x, w, b, g)
    assert not torch.allclose(gw, dw) and not torch.allclose(gx, dx)
    k_rows = METHODS[method].get("k", METHODS[method].get("k1"))
    if scope == "batch":
        assert int((gb != 0).sum()) == k_rows
        assert int((gw.abs().sum(1) != 0).sum()) == k_rows


def test_forward_is_exactly_linear_for_3d_input():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 8, generator=gen, requires_grad=True)
    w = torch.randn(6, 8, generator=gen, requires_grad=True)
    y = sparse_linear(x, w, None, method="topk", k=2, scope="batch")
    assert torch.equal(y, F.linear(x, w))
    y.sum().backward()
    assert x.grad.shape == x.shape and w.grad.shape == w.shape


@pytest.mark.parametrize("scope", ["sample", "batch"])
@pytest.mark.parametrize(
    "method,params", [("dense", {}), ("topk", {"k": 99}), ("partial", {"k1": 99, "k2": 99}), ("complete", {"k": 99})]
)
def test_gradcheck_where_the_rule_is_the_true_gradient(method, params, scope):
    """With k covering every entry each rule must be the exact Jacobian-vector product."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(5, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, generator=gen, requires_grad=True)
    fn = lambda x, w, b: sparse_linear(x, w, b, method=method, scope=scope, **params)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b))


@pytest.mark.parametrize("scope", ["sample", "batch"])
@pytest.mark.parametrize("method", ["topk", "partial", "complete"])
def test_backward_is_linear_in_the_sensitivity(method, scope):
    """For a fixed selection the rule is linear: scaling g by c > 0 scales every gradient by c."""
    gen = torch.Generator().manual_seed(2)
    x, w, b = (torch.randn(*s, dtype=torch.float64, generator=gen) for s in ((6, 12), (10, 12), (10,)))
    g = torch.randn(6, 10, dtype=torch.float64, generator=gen)
    _, gx, gw, gb = run_rule(method, METHODS[method], scope, x, w, b, g)
    _, sx, sw, sb = run_rule(method, METHODS[method], scope, x, w, b, 2.5 * g)
    for a, s in ((gx, sx), (gw, sw), (gb, sb)):
        torch.testing.assert_close(s, 2.5 * a)


@pytest.mark.parametrize("scope", ["sample", "batch"])
@pytest.mark.parametrize("method", list(METHODS))
def test_same_seed_gives_bit_identical_gradients(method, scope):
    def grads():
        gen = torch.Generator().manual_seed(7)
        x, w, b = torch.randn(50, 64, generator=gen), torch.randn(32, 64, generator=gen), torch.randn(32, generator=gen)
        return run_rule(method, METHODS[method], scope, x, w, b, torch.randn(50, 32, generator=gen))[1:]

    for a, b in zip(grads(), grads()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"method": "nope"}, "unknown method 'nope'"),
        ({"method": "topk", "k": 0}, "k must be >= 1"),
        ({"method": "topk", "k": -3}, "k must be >= 1"),
        ({"method": "topk", "k": 2.5}, "k must be a positive integer"),
        ({"method": "topk"}, "method 'topk' needs k"),
        ({"method": "partial", "k1": 4}, "method 'partial' needs k2"),
        ({"method": "partial"}, "needs k1 and k2"),
        ({"method": "topk", "k": 3, "scope": "layer"}, "unknown scope 'layer'"),
        ({"method": "dense", "k": 3}, "method 'dense' does not take k"),
        ({"method": "topk", "k": 3, "k1": 2}, "does not take k1"),
    ],
)
def test_bad_input_is_a_clear_value_error(kwargs, message):
    x, w = torch.randn(2, 4), torch.randn(3, 4)
    with pytest.raises(ValueError, match=message):
        sparse_linear(x, w, **kwargs)


def test_helpers_keep_everything_when_k_covers_the_vector():
    v = torch.randn(4, 6)
    assert topk_rows(v, 6) is v
    assert topk_columns(v, 10) is None
    assert torch.equal(
        topk_columns(v, 2).sort().values, torch.argsort(v.abs().sum(0), descending=True)[:2].sort().values
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_magnitude_keys_order_as_magnitudes(dtype):
    torch.manual_seed(0)
    special = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 1e-30, -1e-30, 3.0, -3.0])
    v = torch.cat((torch.randn(200) * 10.0 ** torch.randint(-6, 6, (200,)), special)).to(dtype)
    keys = magnitude_keys(v)
    assert keys.dtype != dtype  # the integer view is what makes it faster
    mags = v.abs().double()
    # Every pair ranks the same way under keys and under magnitudes.
    assert torch.equal(keys[:, None] > keys[None, :], mags[:, None] > mags[None, :])
    assert torch.equal(keys[:, None] == keys[None, :], mags[:, None] == mags[None, :])


def _nonnegative_with_signed_zeros(gen: torch.Generator) -> torch.Tensor:
    """ReLU-like input: exact zeros of both signs, whole zero columns, ties."""
    v = torch.randn(12, 40, generator=gen).relu()
    v[:, 5] = 0.0
    v[:, 9] = -0.0
    v[v == 0] = torch.where(torch.rand(int((v == 0).sum()), generator=gen) < 0.5, 0.0, -0.0)
    v[:, 11] = v[:, 12]  # a tie
    return v


@pytest.mark.parametrize("k", [1, 7, 30, 39])
def test_nonnegative_ranking_selects_as_magnitudes(k):
    """Without abs, a known non-negative input gets the same columns and the same kept values."""
    v = _nonnegative_with_signed_zeros(torch.Generator().manual_seed(k))
    assert torch.equal(topk_columns(v, k, nonnegative=True), topk_columns(v, k))
    assert torch.equal(topk_rows(v, k, nonnegative=True), topk_rows(v, k))
    keys, mags = magnitude_keys(v, nonnegative=True), v.abs()
    key_above, mag_above = keys[:, :, None] > keys[:, None, :], mags[:, :, None] > mags[:, None, :]
    # A larger magnitude always has a larger key; a larger key never a smaller magnitude
    # (only +0.0 over -0.0 is ranked where magnitudes tie).
    assert bool((key_above | ~mag_above).all())
    assert bool((mags[:, :, None] >= mags[:, None, :])[key_above].all())


@pytest.mark.parametrize("scope", ["sample", "batch"])
@pytest.mark.parametrize("method,params", [("partial", {"k1": 2, "k2": 1}), ("complete", {"k": 1})])
def test_rules_rank_the_input_by_value_when_told_it_is_nonnegative(method, params, scope):
    """The promise is really used (a negative input then ranks by signed value), so the
    tests of the MLP, which makes it, exercise the abs-free path."""
    from asym_sweep.sparse import Needs

    rule = make_rule(method, scope=scope, **params)
    x = torch.tensor([[-100.0, 1.0, 2.0], [-100.0, 1.0, 2.0]])
    w, g = torch.ones(4, 3), torch.tensor([[4.0, 1.0, 1.0, 1.0]] * 2)  # output 0 is always kept
    told = rule.backward(g, x, w, Needs(False, True, True, True), None)
    plain = rule.backward(g, x, w, Needs(False, True, True), None)
    if scope == "batch":
        assert plain.cols.tolist() == [0] and told.cols.tolist() == [2]
    else:
        assert plain.weight[0].tolist() == [-800.0, 0.0, 0.0] and told.weight[0].tolist() == [0.0, 0.0, 16.0]


def test_topk_rows_keeps_the_largest_magnitudes_of_each_row():
    torch.manual_seed(1)
    v = torch.randn(30, 50)
    out = topk_rows(v, 7)
    assert torch.equal((out != 0).sum(1), torch.full((30,), 7))
    kept_min = torch.where(out != 0, v.abs(), torch.inf).amin(1)
    dropped_max = torch.where(out == 0, v.abs(), 0.0).amax(1)
    assert bool((kept_min > dropped_max).all()) and torch.equal(out[out != 0], v[out != 0])


@pytest.mark.parametrize(
    "method,params,expected",
    [
        # batch 10, 8 inputs, 6 outputs, input gradient wanted
        ("dense", {}, 2 * 10 * 6 * 8),
        ("topk", {"k": 2}, 2 * 10 * 2 * 8),
        ("topk", {"k": 99}, 2 * 10 * 6 * 8),
        ("partial", {"k1": 2, "k2": 3}, 10 * 2 * 3 + 10 * 2 * 8),
        ("complete", {"k": 3}, 2 * 10 * 3 * 3),
        ("complete", {"k": 7}, 2 * 10 * 6 * 7),
    ],
)
def test_analytical_madds(method, params, expected):
    assert make_rule(method, **params).backward_madds(10, 8, 6, input_grad=True) == expected
