"""Our layers in an ordinary training loop (issue 18): the gradient sink that every SparseLinear
now has gives exactly the scatter path's gradients, and stays out of ``torch.autograd.grad``."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import load_script

from asym_sweep.model import MLP, build_mlp, parse_arch
from asym_sweep.sparse import make_rule


def model(method: str = "topk", **params) -> MLP:
    torch.manual_seed(0)
    arch = parse_arch("l2-64")
    return MLP(arch, [make_rule(method, **params) for _ in range(arch.depth + 1)])


def batches(n: int = 4):
    gen = torch.Generator().manual_seed(1)
    return [(torch.rand(20, 784, generator=gen), torch.randint(0, 10, (20,), generator=gen)) for _ in range(n)]


@pytest.mark.parametrize(
    "method,params", [("topk", {"k": 8}), ("partial", {"k1": 8, "k2": 100}), ("complete", {"k": 20})]
)
@pytest.mark.parametrize("set_to_none", [True, False])
def test_a_plain_loop_with_the_sink_equals_the_scatter_path(method, params, set_to_none):
    fast = model(method, **params)
    slow = copy.deepcopy(fast)
    slow.use_grad_sinks(False)
    opts = [torch.optim.Adam(m.parameters()) for m in (fast, slow)]
    for x, y in batches():
        for m, opt in zip((fast, slow), opts):
            F.cross_entropy(m(x), y).backward()
        for p, q in zip(fast.parameters(), slow.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=1e-7)
        for opt in opts:
            opt.step()
            opt.zero_grad(set_to_none=set_to_none)
    for p, q in zip(fast.parameters(), slow.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_gradient_accumulation_over_micro_batches():
    fast = model("topk", k=8)
    slow = copy.deepcopy(fast)
    slow.use_grad_sinks(False)
    for x, y in batches(3):  # no zero_grad in between: .grad sums the three
        for m in (fast, slow):
            F.cross_entropy(m(x), y).backward()
    for p, q in zip(fast.parameters(), slow.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=1e-7)


def test_autograd_grad_is_not_affected_by_the_sink():
    m = model("topk", k=8)
    reference = copy.deepcopy(m)
    reference.use_grad_sinks(False)
    x, y = batches(1)[0]
    got = torch.autograd.grad(F.cross_entropy(m(x), y), list(m.parameters()))
    want = torch.autograd.grad(F.cross_entropy(reference(x), y), list(reference.parameters()))
    assert all(p.grad is None for p in m.parameters())  # nothing written behind the caller's back
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_backward_with_inputs_fills_only_those():
    m = model("topk", k=8)
    x, y = batches(1)[0]
    F.cross_entropy(m(x), y).backward(inputs=[m.layers[0].weight])
    assert m.layers[0].weight.grad is not None
    assert all(p.grad is None for name, p in m.named_parameters() if name != "layers.0.weight")


def test_a_long_loop_without_set_to_none_keeps_the_sink_bounded():
    m = model("topk", k=8)
    opt = torch.optim.Adam(m.parameters())
    for _ in range(5):
        for x, y in batches():
            F.cross_entropy(m(x), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=False)
    sink = m.layers[0].sink
    assert all(len(rows) <= m.layers[0].out_features for _, rows in sink._slots.values())


def test_an_mlp_built_from_the_public_api_is_initialised():
    """It trained from torch.empty's leftovers, which made Adam 20% slower (denormals)."""
    m = model("topk", k=8)
    w = m.layers[0].weight
    bound = (6 / (784 + 64)) ** 0.5  # Xavier uniform
    assert torch.isfinite(w).all() and w.abs().max() <= bound and w.std() > bound / 3
    assert torch.count_nonzero(m.layers[0].bias) == 0


def test_build_mlp_leaves_the_global_random_stream_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    build_mlp(parse_arch("l2-64"), [make_rule("dense")] * 3, seed=0)
    assert torch.equal(torch.rand(3), expected)  # the run's dropout stream is untouched


def test_the_meprop_peer_computes_our_batch_scope_top_k():
    bench = load_script("bench_backward")
    torch.manual_seed(0)
    # k >= 10: our top-k is dense on the 10-unit output layer, as meProp's output layer is.
    peer = bench.meprop_mlp("l2-64", seed=0, k=12)
    ours = model("topk", k=12)
    with torch.no_grad():
        for layer, lin in zip(ours.layers, [peer[1], peer[3], peer[5]]):
            layer.weight.copy_(lin.weight)
            layer.bias.copy_(lin.bias)
    x, y = batches(1)[0]
    for m in (peer, ours):
        F.cross_entropy(m(x), y).backward()
    for p, q in zip(peer.parameters(), ours.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)
