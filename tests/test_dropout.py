"""Dropout with the helper's mask (dropout.py, dropmask.cpp) is torch's dropout: the same
values, gradients and generator stream, so a run's numbers do not depend on the helper."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from asym_sweep import dropout, native
from asym_sweep.model import build_mlp, parse_arch
from asym_sweep.rules import make_rule


def _intel_cpu() -> bool:
    try:
        return "GenuineIntel" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


@pytest.fixture
def helper() -> native.Helper:
    found = native.helper()
    if found is None:
        pytest.skip("no C++ compiler on this machine: torch's dropout is all there is")
    if _intel_cpu():
        pytest.skip("torch draws its masks through MKL on Intel CPUs: torch's dropout runs there")
    return found


def test_the_helpers_masks_are_torchs_on_this_cpu(helper):
    """Off Intel CPUs torch's bernoulli_ is its Mersenne Twister loop, which the helper runs:
    the load-time check must pass (were it to fail, dropout would silently be torch's, slower)."""
    assert dropout.helper_masks_agree()


def _both(x: torch.Tensor, p: float, seed: int):
    """(ours, torch's): output, input gradient and the generator state after, from one state."""
    torch.manual_seed(seed)
    start = torch.get_rng_state()
    runs = []
    for fn in (dropout.dropout, F.dropout):
        torch.set_rng_state(start)
        leaf = x.clone().requires_grad_()
        out = fn(leaf, p, True)
        (grad,) = torch.autograd.grad((out * torch.arange(out.numel()).view_as(out)).sum(), leaf)
        runs.append((out.detach(), grad, torch.get_rng_state()))
    return runs


@pytest.mark.parametrize("shape", [(50, 1024), (1, 1), (3, 7), (50, 64), (2, 311), (500, 512), (4, 5, 6)])
@pytest.mark.parametrize("p", [0.4, 0.5, 0.9, 1e-4])
def test_values_gradients_and_the_stream_are_torchs(helper, shape, p):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1)) + 0.5  # no zeros: the mask shows
    (ours, og, ostate), (theirs, tg, tstate) = _both(x, p, seed=len(shape) + int(p * 100))
    assert torch.equal(ours, theirs) and torch.equal(og, tg) and torch.equal(ostate, tstate)
    if p == 0.4 and x.numel() > 1000:
        assert 0.5 < (ours != 0).float().mean() < 0.7  # a real mask, not all kept


def test_a_sequence_of_calls_between_other_draws_follows_torchs_stream(helper):
    x = torch.rand(50, 300)
    outs = []
    for fn in (dropout.dropout, F.dropout):
        torch.manual_seed(7)
        got = []
        for _ in range(5):  # 5 x 15,000 entries: several 624-word refills, mid-refill starts
            got.append(fn(x, 0.4, True))
            got.append(torch.rand(3))
        outs.append(got)
    for a, b in zip(*outs):
        assert torch.equal(a, b)


@pytest.mark.parametrize("case", ["eval", "p0", "float64", "transposed", "empty"])
def test_other_inputs_take_torchs_dropout(helper, monkeypatch, case):
    x = torch.randn(6, 9)
    args = {
        "eval": (x, 0.4, False),
        "p0": (x, 0.0, True),
        "float64": (x.double(), 0.4, True),
        "transposed": (x.t(), 0.4, True),
        "empty": (x[:0], 0.4, True),
    }[case]
    monkeypatch.setattr(native, "bernoulli_from_state", lambda *a: pytest.fail("the helper drew a mask"))
    torch.manual_seed(3)
    ours = dropout.dropout(*args)
    torch.manual_seed(3)
    assert torch.equal(ours, F.dropout(*args))


def test_a_helper_that_draws_other_masks_fails_the_check_and_the_check_draws_nothing(helper, monkeypatch):
    assert dropout.helper_masks_agree()  # the real check, cached before anything is patched
    real = native.bernoulli_from_state

    def off_by_one(found, state, n, q):
        mask = real(found, state, n, q)
        mask[0] = 1.0 - mask[0]
        return mask

    monkeypatch.setattr(native, "bernoulli_from_state", off_by_one)
    torch.manual_seed(11)
    before = torch.get_rng_state()
    assert dropout.helper_masks_agree.__wrapped__() is False
    assert torch.equal(torch.get_rng_state(), before)
    assert dropout.helper_masks_agree()  # the cached answer stands


def test_where_the_check_fails_torchs_dropout_runs(helper, monkeypatch):
    monkeypatch.setattr(dropout, "helper_masks_agree", lambda: False)
    monkeypatch.setattr(native, "bernoulli_from_state", lambda *a: pytest.fail("the helper drew a mask"))
    x = torch.rand(50, 64) + 0.5
    torch.manual_seed(2)
    ours = dropout.dropout(x, 0.4, True)
    torch.manual_seed(2)
    assert torch.equal(ours, F.dropout(x, 0.4, True))


def test_the_check_leaves_the_generator_where_it_was(helper):
    torch.manual_seed(5)
    torch.rand(10)
    before = torch.get_rng_state()
    assert dropout.helper_masks_agree.__wrapped__()
    assert torch.equal(torch.get_rng_state(), before)


def test_a_state_of_another_shape_is_refused(helper):
    with pytest.raises(ValueError, match="5056 bytes"):
        native.bernoulli_from_state(helper, torch.zeros(100, dtype=torch.uint8), 10, 0.5)
    bad = torch.get_rng_state()
    bad[8:12] = torch.tensor([0, 0, 0, 0x7F], dtype=torch.uint8)  # `left` far out of range
    with pytest.raises(ValueError, match="out of range"):
        native.bernoulli_from_state(helper, bad, 10, 0.5)


def test_training_with_dropout_gives_the_same_parameters_with_and_without_the_helper(helper, monkeypatch):
    def train() -> list[torch.Tensor]:
        arch = parse_arch("l2-64")
        model = build_mlp(arch, [make_rule("dense")] * (arch.depth + 1), dropout=0.4, seed=3)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        torch.manual_seed(9)
        gen = torch.Generator().manual_seed(4)
        for _ in range(5):
            x, y = torch.rand(32, 784, generator=gen), torch.randint(0, 10, (32,), generator=gen)
            F.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
        return [t.detach().clone() for t in model.parameters()]

    with_helper = train()
    monkeypatch.setattr(native, "helper", lambda: None)
    without = train()
    assert all(torch.equal(a, b) for a, b in zip(with_helper, without))
