from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from asym_sweep.grid import FASHION_ARCHS as THESIS_ARCHS
from asym_sweep.methods import MethodConfig
from asym_sweep.model import Arch, build_mlp, parse_arch
from asym_sweep.sparse import Dense, TopK


def test_thesis_grid_has_25_architectures():
    assert len(THESIS_ARCHS) == 25 and len(set(THESIS_ARCHS)) == 25
    assert {"l1-64", "l5-1024", "l3-256"} <= set(THESIS_ARCHS)


@pytest.mark.parametrize("name,depth,width", [("l1-64", 1, 64), ("l7-3", 7, 3), (" l2-100 ", 2, 100)])
def test_parse_arch(name, depth, width):
    assert parse_arch(name) == Arch(depth, width)


@pytest.mark.parametrize("bad", ["l0-64", "l3-0", "3-256", "l3_256", "L3-256", "l3-", "", "l-1-5"])
def test_bad_arch_name(bad):
    with pytest.raises(ValueError, match="expected l<depth>-<width>"):
        parse_arch(bad)


@pytest.mark.parametrize("arch_name", THESIS_ARCHS)
def test_every_thesis_arch_builds_with_xavier_init(arch_name):
    arch = parse_arch(arch_name)
    model = build_mlp(arch, [TopK(k=40)] * (arch.depth + 1), seed=0)
    assert len(model.layers) == arch.depth + 1
    for layer in model.layers:
        bound = math.sqrt(6.0 / (layer.in_features + layer.out_features))
        assert layer.weight.abs().max() <= bound
        assert layer.weight.std() > bound / 3  # not left at zero
        assert torch.count_nonzero(layer.bias) == 0
    out = model(torch.rand(4, 1, 28, 28))
    assert out.shape == (4, 10)


def test_same_seed_same_weights_and_different_seed_differs():
    arch = parse_arch("l2-32")
    a, b, c = (build_mlp(arch, [Dense()] * 3, seed=s) for s in (1, 1, 2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)


def test_dropout_only_in_training():
    arch = parse_arch("l2-64")
    model = build_mlp(arch, [Dense()] * 3, dropout=0.4, seed=0)
    x = torch.rand(8, 784)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    assert not torch.equal(model(x), model(x))


def test_output_layer_can_be_excluded():
    spec = MethodConfig("topk", "topk", {"k": 5}, sparsify_output=False)
    rules = spec.layer_rules(3)
    assert [r.name for r in rules] == ["topk", "topk", "dense"]
    assert rules[0] is not rules[1]  # one object per layer


def test_backward_madds_skip_first_layer_input_grad():
    arch = parse_arch("l1-64")
    dense = build_mlp(arch, [Dense(), Dense()], seed=0)
    assert dense.madds(50)[1] == 50 * 64 * 784 + 2 * 50 * 10 * 64
    topk = build_mlp(arch, [TopK(k=40), TopK(k=40)], seed=0)
    assert topk.madds(50)[1] == 50 * 40 * 784 + 2 * 50 * 10 * 64
    assert topk.madds(50, dense=True) == dense.madds(50)


# --- optimised paths (issue 6) give the reference gradients -------------------------------------


def _grads_after_steps(
    arch: str, method: str, sinks: bool, steps: int = 3, accumulate: bool = False, native: bool = True
):
    from asym_sweep.grid import method_from_conf

    spec = method_from_conf(method)
    a = parse_arch(arch)
    model = build_mlp(a, spec.layer_rules(a.depth + 1), seed=0)
    model.use_grad_sinks(sinks)
    if not native:
        for layer in model.layers:
            layer.native = layer.rule.autograd_native
    gen = torch.Generator().manual_seed(1)
    seen = []
    for step in range(steps):
        x, y = torch.randn(7, 784, generator=gen), torch.randint(0, 10, (7,), generator=gen)
        F.cross_entropy(model(x), y).backward()
        if accumulate and step % 2 == 0:
            continue  # the next step's gradient adds to this one, as autograd accumulates
        seen.append([p.grad.clone() for p in model.parameters()])
        for p in model.parameters():
            p.grad = None
        with torch.no_grad():  # move the weights so that every step selects other rows
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return seen


@pytest.mark.parametrize("method", ["topk", "partial", "complete"])
@pytest.mark.parametrize("accumulate", [False, True])
def test_grad_sink_equals_the_scatter_path(method: str, accumulate: bool) -> None:
    ref = _grads_after_steps("l2-48", method, sinks=False, accumulate=accumulate)
    fast = _grads_after_steps("l2-48", method, sinks=True, accumulate=accumulate)
    assert len(ref) == len(fast) > 0
    for r_step, f_step in zip(ref, fast):
        for r, f in zip(r_step, f_step):
            assert torch.equal(r, f)


@pytest.mark.parametrize("method", ["topk", "partial", "complete"])
def test_layers_a_rule_keeps_whole_use_native_autograd_with_equal_grads(method: str) -> None:
    # l1-8: k (40, 170 / k1 40) covers the 8- and 10-unit layers, so they are dense backprop.
    arch, spec = parse_arch("l1-8"), None
    from asym_sweep.grid import method_from_conf

    spec = method_from_conf(method)
    model = build_mlp(arch, spec.layer_rules(2), seed=0)
    assert model.layers[1].native  # the 10-unit output layer
    fast = _grads_after_steps("l1-8", method, sinks=True)
    ref = _grads_after_steps("l1-8", method, sinks=False, native=False)
    for r_step, f_step in zip(ref, fast):
        for r, f in zip(r_step, f_step):
            torch.testing.assert_close(f, r, rtol=1e-6, atol=1e-7)


def test_grad_sink_clears_rows_of_the_previous_step() -> None:
    from asym_sweep.sparse import GradSink

    p = torch.nn.Parameter(torch.zeros(6, 3))
    sink = GradSink()
    sink.write(p, torch.tensor([0, 2]), torch.ones(2, 3))
    first = p.grad
    p.grad = None
    sink.write(p, torch.tensor([5]), torch.full((1, 3), 2.0))
    expected = torch.zeros(6, 3)
    expected[5] = 2.0
    assert torch.equal(p.grad, expected) and p.grad is first  # reused buffer, old rows zeroed
    sink.write(p, torch.tensor([5, 1]), torch.ones(2, 3))  # .grad kept: accumulate
    expected[5] += 1.0
    expected[1] = 1.0
    assert torch.equal(p.grad, expected)


def test_grad_sink_writes_blocks_and_clears_their_whole_rows_next_step() -> None:
    from asym_sweep.sparse import GradSink

    p = torch.nn.Parameter(torch.zeros(5, 4))
    sink = GradSink()
    sink.write(p, torch.tensor([3, 0]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([2, 1]))
    expected = torch.zeros(5, 4)
    expected[3, 2], expected[3, 1], expected[0, 2], expected[0, 1] = 1.0, 2.0, 3.0, 4.0
    assert torch.equal(p.grad, expected)
    p.grad = None
    sink.write(p, torch.tensor([1]), torch.tensor([[5.0]]), torch.tensor([3]))
    expected.zero_()
    expected[1, 3] = 5.0
    assert torch.equal(p.grad, expected)
    sink.write(p, torch.tensor([1, 4]), torch.ones(2, 2), torch.tensor([3, 0]))  # .grad kept: accumulate
    expected[1, 3] += 1.0
    expected[1, 0] = expected[4, 3] = expected[4, 0] = 1.0
    assert torch.equal(p.grad, expected)


def test_grad_sink_adds_blocks_to_a_non_contiguous_grad() -> None:
    # The flat scatter needs a contiguous .grad; a user-set strided one takes index_put_.
    from asym_sweep.sparse import GradSink

    p = torch.nn.Parameter(torch.zeros(5, 4))
    p.grad = torch.arange(20.0).reshape(4, 5).t()
    expected = p.grad.clone()
    GradSink().write(p, torch.tensor([4, 1]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([0, 3]))
    expected[4, 0] += 1.0
    expected[4, 3] += 2.0
    expected[1, 0] += 3.0
    expected[1, 3] += 4.0
    assert not p.grad.is_contiguous() and torch.equal(p.grad, expected)


def test_layers_are_told_their_input_is_nonnegative_only_where_it_is_by_construction() -> None:
    arch = parse_arch("l3-16")
    rules = [TopK(k=4)] * 4
    assert [layer.nonnegative_input for layer in build_mlp(arch, rules).layers] == [False, True, True, True]
    assert all(layer.nonnegative_input for layer in build_mlp(arch, rules, nonnegative_pixels=True).layers)


@pytest.mark.parametrize("scope", ["batch", "sample"])
@pytest.mark.parametrize(
    "method,override",
    [("partial", {}), ("complete", {}), ("swat", {}), ("saw", {}), ("swat", {"period": 2})],
    ids=["partial", "complete", "swat", "saw", "swat-threshold-reuse"],
)
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_the_nonnegative_input_shortcut_leaves_gradients_unchanged(
    method: str, override: dict, scope: str, dropout: float
) -> None:
    """The abs-free ranking of ReLU outputs and pixels (sparse.Needs) against ranking by |x|,
    over steps whose weights move, with pixels that hold exact zeros as the data do."""
    from asym_sweep.grid import method_from_conf

    if override.get("period", 1) > 1 and scope == "sample":
        pytest.skip("threshold reuse is batch scope only")
    base = method_from_conf(method)
    spec = MethodConfig(base.name, base.rule, {**base.params, **override}, scope)
    a = parse_arch("l2-48")
    runs = []
    for told in (True, False):
        model = build_mlp(a, spec.layer_rules(a.depth + 1), dropout, seed=0, nonnegative_pixels=told)
        for layer in model.layers:
            layer.nonnegative_input = layer.nonnegative_input and told
        model.use_grad_sinks(True)
        gen = torch.Generator().manual_seed(1)
        torch.manual_seed(2)  # the same dropout masks in both runs
        seen = []
        for step in range(3):
            for layer in model.layers:  # SWAT's threshold reuse counts steps
                layer.rule.start_step(step)
            x = torch.rand(9, 784, generator=gen)
            x[x < 0.3] = 0.0
            y = torch.randint(0, 10, (9,), generator=gen)
            F.cross_entropy(model(x), y).backward()
            seen.append([p.grad.clone() for p in model.parameters()])
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn(p.shape, generator=gen) * 0.05)
                    p.grad = None
        runs.append(seen)
    assert any(layer.nonnegative_input for layer in model.layers) is False
    for told_step, plain_step in zip(*runs):
        for t, p in zip(told_step, plain_step):
            assert torch.equal(t, p)
