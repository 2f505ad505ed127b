"""The fused backward (src/asym_sweep/engine/fused.cpp) gives the pure-torch path's gradients bit for bit,
on every rule that has one, through every way autograd asks for them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from asym_sweep.engine import fused
from asym_sweep.engine.rule import RULES
from asym_sweep.model import build_mlp, parse_arch
from asym_sweep.sparse import make_rule
from asym_sweep.timing import Stopwatch
from asym_sweep.train import make_adam

needs_fused = pytest.mark.skipif(
    fused.module() is None, reason="the fused backward could not be built here (no C++ compiler or Python headers)"
)

# Every configuration the fused backward takes: the grid's defaults, their readings, and k at or
# above a layer's width (no rows selected: the scatter of cols alone).
FUSED_CASES = [
    ("topk", {"k": 40}),
    ("topk", {"k": 5}),
    ("partial", {"k1": 40, "k2": 200, "x_scope": "sample"}),
    ("partial", {"k1": 40, "k2": 200}),
    ("partial", {"k1": 100, "k2": 30, "x_scope": "sample"}),
    ("complete", {"k": 170}),
    ("complete", {"k": 20, "x_scope": "sample"}),
]


def train_steps(rule_name: str, params: dict, arch: str, use_fused: bool, how: str, nonnegative: bool, steps: int = 3):
    """Gradients of a few Adam steps (the weights move, so the selections change step to step)."""
    a = parse_arch(arch)
    model = build_mlp(a, [make_rule(rule_name, **params)] * (a.depth + 1), seed=0, nonnegative_pixels=nonnegative)
    model.use_fused(use_fused)
    opt = make_adam(model.parameters())
    gen = torch.Generator().manual_seed(1)
    clock = Stopwatch()
    model.set_clock(clock)
    seen = []
    for _ in range(steps):
        x = torch.rand(50, 784, generator=gen) if nonnegative else torch.randn(50, 784, generator=gen)
        y = torch.randint(0, 10, (50,), generator=gen)
        loss = F.cross_entropy(model(x), y)
        if how == "grad":  # torch.autograd.grad: the scatter path, nothing written into .grad
            grads = torch.autograd.grad(loss, list(model.parameters()))
            for p, g in zip(model.parameters(), grads):
                p.grad = g
        else:
            loss.backward()
            if how == "accumulate":  # a second backward into the same .grad (no zero_grad between)
                F.cross_entropy(model(x * 0.5), y).backward()
        seen.append([p.grad.clone() for p in model.parameters()])
        opt.step()
        opt.zero_grad(set_to_none=True)
    return seen, [p.detach().clone() for p in model.parameters()], clock.seconds


@needs_fused
@pytest.mark.parametrize("rule_name,params", FUSED_CASES)
@pytest.mark.parametrize("how", ["backward", "grad", "accumulate"])
def test_fused_gradients_equal_the_pure_torch_path_bit_for_bit(rule_name, params, how):
    for arch, nonnegative in (("l2-64", True), ("l1-256", False)):
        fused_grads, fused_weights, fused_s = train_steps(rule_name, params, arch, True, how, nonnegative)
        torch_grads, torch_weights, _ = train_steps(rule_name, params, arch, False, how, nonnegative)
        for step, (a, b) in enumerate(zip(fused_grads, torch_grads)):
            assert all(torch.equal(u, v) for u, v in zip(a, b)), (
                f"{rule_name} {params} {arch} {how}: step {step} differs"
            )
        assert all(torch.equal(u, v) for u, v in zip(fused_weights, torch_weights))
        assert fused_s > 0  # the fused path times its selection on the run's clock


@needs_fused
def test_fused_path_is_taken_where_a_rule_has_one(monkeypatch):
    calls = []
    lib = fused.module()

    class Counting:
        def backward(self, *args):
            calls.append(args[0])
            return lib.backward(*args)

    monkeypatch.setattr(fused, "module", lambda: Counting())
    for rule_name, params in FUSED_CASES[:1] + FUSED_CASES[2:3] + FUSED_CASES[5:6]:
        train_steps(rule_name, params, "l2-64", True, "backward", True, steps=1)
    assert sorted(set(calls)) == [fused.kind_code("topk"), fused.kind_code("partial"), fused.kind_code("complete")]
    calls.clear()
    train_steps("topk", {"k": 40}, "l2-64", False, "backward", True, steps=1)
    assert calls == []  # use_fused(False): the pure-torch path


def test_only_the_thesis_batch_scope_rules_have_a_fused_backward():
    with_spec = set()
    for name in RULES:
        for scope in ("batch", "sample"):
            rule = make_rule(name, scope=scope, **default_params(name))
            if rule.fused_spec() is not None:
                with_spec.add((name, scope))
    assert with_spec == {("topk", "batch"), ("partial", "batch"), ("complete", "batch")}
    assert make_rule("complete", k=170, neurons="union").fused_spec() is None
    assert make_rule("partial", k1=40, k2=200, x_scope="sample").fused_spec() == fused.FusedSpec(
        "partial", 40, 200, True
    )


def default_params(name: str) -> dict:
    from asym_sweep.grid import method_node

    known = {"dense": {}, "topk": {"k": 40}, "partial": {"k1": 40, "k2": 200}, "complete": {"k": 170}}
    if name in known:
        return known[name]
    node = method_node(name)
    return dict(node.params)


def test_a_subclass_that_changes_the_backward_gets_no_fused_path():
    from dataclasses import dataclass

    from asym_sweep.rules.thesis import TopK

    @dataclass(kw_only=True)
    class Shifted(TopK):
        def select_columns(self, g, k):
            return super().select_columns(g, k + 1)

    assert Shifted(k=4).fused_spec() is None


def test_the_switch_turns_the_extension_off(monkeypatch):
    monkeypatch.setenv(fused.DISABLE_ENV, "0")
    assert fused.module.__wrapped__() is None
