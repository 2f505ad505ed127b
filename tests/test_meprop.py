"""meProp's variants and random selection (SWAT's Figure 3) against references, in float64."""

from __future__ import annotations

import pytest
import torch

from asym_sweep.rules.meprop import keep_first, norm_limited_counts
from asym_sweep.selection import keep_count as fraction_k
from asym_sweep.sparse import Needs, apply_rule, make_rule, sparse_linear


def grads(method, params, scope, x, w, b, g):
    x, w, b = (t.clone().requires_grad_(True) for t in (x, w, b))
    sparse_linear(x, w, b, method=method, scope=scope, **params).backward(g)
    return x.grad, w.grad, b.grad


def data(batch=6, n_in=12, n_out=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    make = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    return make(batch, n_in), make(n_out, n_in), make(n_out), make(batch, n_out)


def masked_reference(g, mask, x, w):
    gs = g * mask
    return gs @ w, gs.t() @ x, gs.sum(0)


def assert_grads(actual, expected):
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)


# -- norm-limited k ----------------------------------------------------------


def brute_force_k(v: torch.Tensor, tau: float) -> int:
    """min{k : |top_k(v)|_1 > tau |v|_1} by trying every k (None if no k qualifies)."""
    mags = sorted(v.abs().tolist(), reverse=True)
    total = sum(mags)
    for k in range(1, len(mags) + 1):
        if sum(mags[:k]) > tau * total:
            return k
    return len(mags)  # a zero vector: no k qualifies; the rule keeps everything (all zero)


@pytest.mark.parametrize("tau", [0.1, 0.5, 0.8, 0.99])
def test_norm_limited_k_matches_its_definition(tau):
    gen = torch.Generator().manual_seed(1)
    rows = [torch.randn(17, generator=gen, dtype=torch.float64) ** 3 for _ in range(20)]
    rows += [
        torch.zeros(17, dtype=torch.float64),
        torch.ones(17, dtype=torch.float64),
        torch.eye(17, dtype=torch.float64)[3],
    ]
    v = torch.stack(rows)
    assert norm_limited_counts(v, tau).tolist() == [brute_force_k(r, tau) for r in v]


def test_keep_first_keeps_the_largest_counts_per_row():
    v = torch.tensor([[0.1, -3.0, 2.0, 0.5], [4.0, 1.0, -2.0, 3.0]], dtype=torch.float64)
    out = keep_first(v, torch.tensor([1, 3]))
    assert out.tolist() == [[0.0, -3.0, 0.0, 0.0], [4.0, 0.0, -2.0, 3.0]]


def test_topk_norm_per_example_gradients():
    x, w, b, g = data(seed=2)
    counts = torch.tensor([brute_force_k(r, 0.7) for r in g])
    order = g.abs().argsort(dim=1, descending=True)
    mask = torch.zeros_like(g)
    for r in range(len(g)):
        mask[r, order[r, : counts[r]]] = 1
    assert_grads(grads("topk_norm", {"tau": 0.7}, "sample", x, w, b, g), masked_reference(g, mask, x, w))
    # Its FLOP count is what the last backward kept: the sum of the per-example k.
    rule = make_rule("topk_norm", scope="sample", tau=0.7)
    rule.backward(g, x, w, Needs(True, True, True), None)
    assert rule.backward_madds(6, 12, 10, input_grad=True) == int(counts.sum()) * 12 * 2


def test_topk_norm_batch_scope_uses_the_summed_magnitudes():
    x, w, b, g = data(seed=3)
    k = brute_force_k(g.abs().sum(0), 0.6)
    cols = g.abs().sum(0).argsort(descending=True)[:k]
    mask = torch.zeros(g.shape[1], dtype=g.dtype)
    mask[cols] = 1
    assert_grads(grads("topk_norm", {"tau": 0.6}, "batch", x, w, b, g), masked_reference(g, mask.expand_as(g), x, w))


# -- k as a fraction of the width --------------------------------------------


def test_fraction_k_rounds_before_the_ceiling():
    assert fraction_k(0.3, 10) == 3 and fraction_k(0.03, 256) == 8 and fraction_k(0.03, 1024) == 31
    assert fraction_k(0.001, 10) == 1 and fraction_k(1.0, 64) == 64


@pytest.mark.parametrize("scope", ["batch", "sample"])
def test_topk_fraction_is_topk_with_k_from_the_width(scope):
    x, w, b, g = data(n_out=20, seed=4)
    expected = grads("topk", {"k": fraction_k(0.25, 20)}, scope, x, w, b, g)
    assert_grads(grads("topk_fraction", {"fraction": 0.25}, scope, x, w, b, g), expected)


# -- annealed k ---------------------------------------------------------------


def test_epoch_schedule():
    rule = make_rule("topk_anneal_epoch", k=40, milestones=[3, 5], factor=0.5, min_k=8)
    ks = []
    for epoch in range(6):
        rule.start_epoch(epoch, 6)
        ks.append(rule.current_k(1024))
    assert ks == [40, 40, 20, 20, 10, 10]
    rule.start_epoch(1, 6)  # recomputed from the schedule (a resumed run lands on the same k)
    assert rule.current_k(1024) == 40 and rule.current_k(16) == 16


def test_val_loss_rise_halves_k_and_state_round_trips():
    rule = make_rule("topk_anneal_val", k=40, factor=0.5, min_k=15)
    ks = []
    for epoch, loss in enumerate([1.0, 0.8, 0.9, 0.7, 0.75, 0.8]):
        rule.end_epoch(epoch, {"val_loss": loss})
        ks.append(rule.current_k(1024))
    assert ks == [40, 40, 20, 20, 15, 15]  # min_k bounds the last halving
    other = make_rule("topk_anneal_val", k=40, factor=0.5, min_k=15)
    other.load_state_dict(rule.state_dict())
    assert other.current_k(1024) == 15 and other.last_val_loss == 0.8


def test_annealed_k_is_used_by_the_backward():
    x, w, b, g = data(n_out=30, seed=5)
    rule = make_rule("topk_anneal_epoch", k=12, milestones=[2], factor=0.5)
    rule.start_epoch(1, 2)
    xs, ws, bs = (t.clone().requires_grad_(True) for t in (x, w, b))
    apply_rule(rule, xs, ws, bs).backward(g)
    assert_grads((xs.grad, ws.grad, bs.grad), grads("topk", {"k": 6}, "batch", x, w, b, g))


@pytest.mark.parametrize(
    "method,params,message",
    [
        ("topk_anneal_epoch", {"k": 40, "factor": 1.5}, "factor must be in"),
        ("topk_anneal_epoch", {"k": 40, "milestones": [0]}, "milestones must be"),
        ("topk_anneal_val", {"k": 4, "min_k": 8}, "min_k"),
        ("topk_fraction", {"fraction": 0.0}, "fraction must be in"),
        ("topk_norm", {"tau": 1.0}, "tau must be in"),
        ("random", {}, "needs k"),
    ],
)
def test_bad_parameters(method, params, message):
    with pytest.raises(ValueError, match=message):
        make_rule(method, **params)


# -- random selection ---------------------------------------------------------


@pytest.mark.parametrize("scope", ["batch", "sample"])
def test_random_keeps_k_unscaled_sensitivities(scope):
    x, w, b, g = data(batch=8, n_out=20, seed=6)
    torch.manual_seed(0)
    gx, gw, gb = grads("random", {"k": 5}, scope, x, w, b, g)
    if scope == "batch":
        chosen = (gb != 0).nonzero().flatten()
        assert len(chosen) == 5
        mask = torch.zeros(20, dtype=g.dtype)
        mask[chosen] = 1
        mask = mask.expand_as(g)
    else:
        # Recover each example's chosen entries from the same random draw.
        torch.manual_seed(0)
        idx = torch.rand(g.shape).topk(5, dim=-1).indices
        mask = torch.zeros_like(g).scatter_(1, idx, 1.0)
    assert_grads((gx, gw, gb), masked_reference(g, mask, x, w))


def test_random_selection_is_not_the_largest_and_is_seeded():
    x, w, b, g = data(batch=4, n_out=50, seed=7)
    torch.manual_seed(1)
    first = grads("random", {"k": 5}, "batch", x, w, b, g)[2]
    torch.manual_seed(1)
    again = grads("random", {"k": 5}, "batch", x, w, b, g)[2]
    assert torch.equal(first, again)
    chosen = set()
    for seed in range(20):
        torch.manual_seed(seed)
        chosen |= set((grads("random", {"k": 5}, "batch", x, w, b, g)[2] != 0).nonzero().flatten().tolist())
    assert len(chosen) > 20  # top-k would always pick the same 5
