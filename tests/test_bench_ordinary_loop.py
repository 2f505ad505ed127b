"""scripts/bench_ordinary_loop.py and scripts/bench_adam_zero_state.py run end to end on tiny sizes
and refuse bad arguments (nothing here is timed)."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from helpers import load_script

from asym_sweep.model import MLP, parse_arch
from asym_sweep.sparse import make_rule


def test_ordinary_loop_prints_a_row_per_model(capsys):
    script = load_script("bench_ordinary_loop")
    assert (
        script.main(
            ["--archs", "l1-16", "--batch", "4", "--warmup", "2", "--rounds", "3", "--batches", "2", "--threads", "1"]
        )
        == 0
    )
    out = capsys.readouterr().out
    for model in ("nn.Linear", "ours dense", "ours topk", "fn topk", "fn topk/ex"):
        assert re.search(rf"^l1-16 +{model} +( +[\d.]+){{6}}$", out, re.M), model
    assert "2 batches in turn, 2 warm-up steps" in out


def test_ordinary_loop_feeds_every_batch_in_turn(monkeypatch):
    script = load_script("bench_ordinary_loop")
    seen: list[int] = []
    real_step = script.step

    def spy(model, opt, x, y):
        seen.append(x.data_ptr())
        return real_step(model, opt, x, y)

    monkeypatch.setattr(script, "step", spy)
    script.bench("l1-16", batch=4, fused=False, warmup=1, rounds=3, seed=0, n_batches=3)
    n = len(script.models_for("l1-16"))
    assert len(seen) == 4 * n
    per_round = [set(seen[i : i + n]) for i in range(0, len(seen), n)]  # every model once a round, one batch each round
    assert all(len(r) == 1 for r in per_round)
    assert len({next(iter(r)) for r in per_round}) == 3


@pytest.mark.parametrize("scope", ["batch", "sample"])
def test_the_functional_rows_compute_the_modules_gradients(scope):
    # The "fn" rows time the same MLP through sparse_linear: equal outputs and gradients to the
    # module MLP of the same rule and weights (the scatter path against the gradient sink).
    script = load_script("bench_ordinary_loop")
    torch.manual_seed(0)
    fn = script.FunctionalMLP("l2-32", "topk", k=5, scope=scope)
    arch = parse_arch("l2-32")
    module = MLP(arch, [make_rule("topk", k=5, scope=scope)] * (arch.depth + 1))
    with torch.no_grad():
        for mine, theirs in zip(module.parameters(), fn.parameters(), strict=True):
            mine.copy_(theirs)
    x, y = torch.rand(6, 784), torch.randint(0, 10, (6,))
    for _ in range(2):  # the second step exercises the sink's reused buffers
        for m in (fn, module):
            m.zero_grad(set_to_none=True)
            F.cross_entropy(m(x), y).backward()
        for mine, theirs in zip(module.parameters(), fn.parameters(), strict=True):
            torch.testing.assert_close(mine.grad, theirs.grad, rtol=0, atol=0)
        x = torch.rand(6, 784)
    assert any((p.grad == 0).any() for p in fn.parameters())  # the rule did sparsify


@pytest.mark.parametrize("args", [["--batches", "0"], ["--rounds", "0"], ["--warmup", "-1"], ["--threads", "0"]])
def test_ordinary_loop_bad_sizes_exit_with_a_message(args, capsys):
    assert load_script("bench_ordinary_loop").main(args) == 2
    assert "must be at least" in capsys.readouterr().err


def test_adam_zero_state_prints_each_op(capsys):
    script = load_script("bench_adam_zero_state")
    assert script.main(["--size", "8", "--tensors", "2", "--rounds", "2", "--warmup", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for op in ("sqrt", "default Adam", "fused Adam"):
        assert re.search(rf"^{op} +[\d.]+ +[\d.]+ +[\d.]+$", out, re.M), op


def test_adam_zero_state_keeps_the_moment_it_was_given():
    script = load_script("bench_adam_zero_state")
    for zero in (True, False):
        step = script.adam_case(8, 1, zero, fused=False)
        step()
        (state,) = step.__self__.state.values()
        assert bool((state["exp_avg_sq"] == 0).all()) is zero


def test_adam_zero_state_bad_sizes_exit_with_a_message(capsys):
    with pytest.raises(SystemExit) as exc:
        load_script("bench_adam_zero_state").main(["--size", "0"])
    assert exc.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
