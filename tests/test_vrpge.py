"""VR-PGE (learned neuron masks): projection, estimator, compact sub-networks, the two-pass procedure."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from asym_sweep.engine.autograd import GradSink
from asym_sweep.engine.procedure import make_procedure
from asym_sweep.methods import MethodConfig
from asym_sweep.model import build_mlp, parse_arch
from asym_sweep.rules.vrpge import (
    MaskProcedure,
    blocks_forward,
    gather_blocks,
    policy_gradient,
    project_capped_simplex,
    subnetwork_forward,
    subnetwork_madds,
    write_block_grads,
)
from asym_sweep.timing import Timers
from asym_sweep.train import make_adam

# -- projection ----------------------------------------------------------------


def brute_force_projection(v: list[float], budget: float) -> list[float]:
    """Closest point of {s in [0,1]^n, sum s <= budget}, by enumerating every KKT pattern.

    Each coordinate sits at 0, at 1 or is free; the budget constraint is slack (free
    coordinates equal v) or tight (free coordinates equal v - theta, theta >= 0). The
    projection is one of these candidates, so the nearest feasible candidate is it.
    """
    n, best, best_d = len(v), None, math.inf
    for pattern in itertools.product("01f", repeat=n):
        free = [i for i in range(n) if pattern[i] == "f"]
        ones = sum(1 for p in pattern if p == "1")
        thetas = [0.0]
        if free:
            thetas.append((sum(v[i] for i in free) + ones - budget) / len(free))
        for theta in thetas:
            if theta < -1e-12:
                continue
            s = [0.0 if p == "0" else 1.0 if p == "1" else v[i] - theta for i, p in enumerate(pattern)]
            if all(-1e-12 <= x <= 1 + 1e-12 for x in s) and sum(s) <= budget + 1e-9:
                d = sum((a - b) ** 2 for a, b in zip(s, v))
                if d < best_d:
                    best, best_d = s, d
    assert best is not None
    return best


@pytest.mark.parametrize("case", range(40))
def test_projection_is_the_euclidean_projection(case):
    gen = torch.Generator().manual_seed(case)
    n = 1 + case % 5
    v = (torch.rand(n, generator=gen, dtype=torch.float64) * 3 - 1).tolist()
    budget = float(torch.rand((), generator=gen, dtype=torch.float64) * n)
    got = project_capped_simplex(torch.tensor(v, dtype=torch.float64), budget)
    assert got.min() >= 0 and got.max() <= 1 and float(got.sum()) <= budget + 1e-12
    torch.testing.assert_close(
        got, torch.tensor(brute_force_projection(v, budget), dtype=torch.float64), atol=1e-9, rtol=0
    )


def test_projection_keeps_feasible_points_and_is_feasible_at_scale():
    s = torch.tensor([0.2, 0.9, 0.0, 0.4])
    assert torch.equal(project_capped_simplex(s, 2.0), s)
    v = torch.randn(5000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.7
    p = project_capped_simplex(v, 1234.5)
    assert p.min() >= 0 and p.max() <= 1 and float(p.sum()) <= 1234.5
    assert float(p.sum()) == pytest.approx(1234.5, abs=1e-3)  # the budget binds here


# -- the estimator ------------------------------------------------------------


def test_policy_gradient_formula_at_alpha_one_half():
    s = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    m = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    expected = 0.3 * (m - s) / torch.sqrt(s * (1 - s))
    torch.testing.assert_close(policy_gradient(m, s, 0.3, 0.5), expected)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.9])
def test_policy_gradient_is_unbiased_for_the_preconditioned_gradient(alpha):
    """E_{m,m'} (L(m) - L(m')) H^a grad ln p(m|s) = H^a grad_s E_m L(m) (004, eq. 13), exactly."""
    n = 3
    gen = torch.Generator().manual_seed(11)
    masks = [torch.tensor(m, dtype=torch.float64) for m in itertools.product([0.0, 1.0], repeat=n)]
    loss = {tuple(m.tolist()): float(torch.randn((), generator=gen)) for m in masks}
    s = torch.tensor([0.3, 0.6, 0.85], dtype=torch.float64, requires_grad=True)
    prob = lambda m, s: torch.prod(torch.where(m > 0, s, 1 - s))  # noqa: E731

    expected_loss = sum(prob(m, s) * loss[tuple(m.tolist())] for m in masks)
    (grad,) = torch.autograd.grad(expected_loss, s)
    target = (s.detach() * (1 - s.detach())) ** alpha * grad

    sd = s.detach()
    estimate = sum(
        prob(m, sd) * prob(m2, sd) * policy_gradient(m, sd, loss[tuple(m.tolist())] - loss[tuple(m2.tolist())], alpha)
        for m in masks
        for m2 in masks
    )
    torch.testing.assert_close(estimate, target)


# -- compact sub-networks -----------------------------------------------------


def vrpge_model(arch="l2-8", seed=0, **params):
    spec = MethodConfig(name="vrpge", rule="vrpge", params=params)
    a = parse_arch(arch)
    return build_mlp(a, spec.layer_rules(a.depth + 1), seed=seed)


def masked_dense_forward(model, x, keep):
    h = x
    *hidden, last = model.layers
    for layer, k in zip(hidden, keep):
        mask = torch.zeros(layer.out_features, dtype=x.dtype)
        mask[k] = 1
        h = F.relu(F.linear(h, layer.weight, layer.bias)) * mask
    return F.linear(h, last.weight, last.bias)


def test_subnetwork_equals_the_masked_dense_network_with_equal_gradients():
    model = vrpge_model().double()
    x = torch.randn(5, 784, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([1, 2, 3, 4, 5])
    keep = [torch.tensor([0, 3, 4, 7]), torch.tensor([2, 5])]
    twin = copy.deepcopy(model)
    a = F.cross_entropy(subnetwork_forward(model, x, keep), y)
    b = F.cross_entropy(masked_dense_forward(twin, x, keep), y)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    a.backward()
    b.backward()
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-12)
    dropped = [i for i in range(8) if i not in (0, 3, 4, 7)]
    assert model.layers[0].weight.grad[dropped].abs().sum() == 0  # no gradient reaches a dropped neuron


def test_gathered_blocks_give_the_autograd_gradients_step_after_step():
    """The training path (detached blocks written into a GradSink) equals autograd through the gathers."""
    model = vrpge_model("l2-8").double()
    twin = copy.deepcopy(model)
    sink = GradSink()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(5, 784, dtype=torch.float64, generator=gen)
    y = torch.tensor([0, 1, 2, 3, 4])
    rounds = [
        ([torch.tensor([0, 3, 4, 7]), torch.tensor([2, 5])], [torch.tensor([1, 3]), torch.tensor([0, 5, 6])]),
        ([torch.tensor([6]), torch.tensor([1, 2, 3])], [torch.tensor([2, 6, 7]), torch.tensor([], dtype=torch.long)]),
    ]
    for keep1, keep2 in rounds:  # the second round must clear the first round's rows
        twin.zero_grad(set_to_none=True)
        ref = 0.5 * (
            F.cross_entropy(subnetwork_forward(twin, x, keep1), y)
            + F.cross_entropy(subnetwork_forward(twin, x, keep2), y)
        )
        ref.backward()
        b1, b2 = gather_blocks(model, keep1), gather_blocks(model, keep2)
        loss = 0.5 * (F.cross_entropy(blocks_forward(b1, x), y) + F.cross_entropy(blocks_forward(b2, x), y))
        torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)
        loss.backward()
        model.zero_grad(set_to_none=True)  # as the optimizer's step leaves it
        write_block_grads(sink, model, b1)
        write_block_grads(sink, model, b2)
        for p, q in zip(model.parameters(), twin.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-12)


def test_subnetwork_madds_fall_with_the_mask():
    model = vrpge_model("l2-100")
    full = [torch.arange(100), torch.arange(100)]
    half = [torch.arange(50), torch.arange(50)]
    f_full, b_full = subnetwork_madds(model, full, 10)
    assert f_full == 10 * (784 * 100 + 100 * 100 + 100 * 10)
    assert b_full == 10 * (784 * 100 + 2 * 100 * 100 + 2 * 100 * 10)
    f_half, _ = subnetwork_madds(model, half, 10)
    assert f_half == 10 * (784 * 50 + 50 * 50 + 50 * 10)


# -- the procedure ------------------------------------------------------------


def make(model_seed=0, seed=0, **params):
    model = vrpge_model("l2-16", seed=model_seed, **params)
    optimizer = make_adam(model.parameters())
    return make_procedure(model, optimizer, Timers(), seed)


def batches(n=6):
    gen = torch.Generator().manual_seed(5)
    return [(torch.rand(20, 784, generator=gen), torch.randint(0, 10, (20,), generator=gen)) for _ in range(n)]


def test_steps_keep_s_feasible_and_learn_weights():
    proc = make(keep=0.25)
    assert isinstance(proc, MaskProcedure) and proc.budget == 8.0
    before = proc.model.layers[0].weight.detach().clone()
    for xb, yb in batches():
        proc.step(xb, yb)
        s = proc.s.detach()
        assert s.min() >= 0 and s.max() <= 1 and float(s.sum()) <= 8.0 + 1e-5
    assert not torch.equal(before, proc.model.layers[0].weight)
    assert not torch.allclose(proc.s.detach(), torch.full((32,), 0.25, dtype=torch.float64))  # s moved
    assert sum(len(k) for k in proc.deterministic()) == 8
    assert proc.madds.backward < proc.madds.dense_backward and proc.step_count == 6


def test_finetuning_freezes_the_masks():
    proc = make(keep=0.5, finetune_epochs=1)
    data = batches()
    proc.start_epoch(0, 2)
    proc.step(*data[0])
    proc.start_epoch(1, 2)
    frozen = [k.clone() for k in proc.frozen]
    s = proc.s.detach().clone()
    for xb, yb in data[1:]:
        proc.step(xb, yb)
    assert torch.equal(proc.s.detach(), s) and all(torch.equal(a, b) for a, b in zip(proc.frozen, frozen))
    x = data[0][0]
    torch.testing.assert_close(proc.predict(x), subnetwork_forward(proc.model, x, frozen))
    assert proc.epoch_notes()["phase"] == "finetune"


def test_state_round_trip_continues_identically():
    data = batches(8)
    a = make()
    for xb, yb in data[:4]:
        a.step(xb, yb)
    saved = (
        copy.deepcopy(a.model.state_dict()),
        copy.deepcopy(a.optimizer.state_dict()),
        copy.deepcopy(a.state_dict()),
    )
    for xb, yb in data[4:]:
        a.step(xb, yb)

    b = make(model_seed=3, seed=9)  # other weights and mask stream, all overwritten by the load
    b.model.load_state_dict(saved[0])
    b.optimizer.load_state_dict(saved[1])
    b.load_state_dict(saved[2])
    for xb, yb in data[4:]:
        b.step(xb, yb)
    assert torch.equal(a.s.detach(), b.s.detach())
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)


def test_finetune_epochs_must_leave_a_search_epoch():
    spec = MethodConfig(name="vrpge", rule="vrpge", params={"finetune_epochs": 3})
    with pytest.raises(ValueError, match="leaves no epoch to learn the masks"):
        spec.make_rule().check_training(3)
    spec.make_rule().check_training(4)
