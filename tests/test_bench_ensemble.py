"""scripts/bench_ensemble.py: the stacked ensemble trains each member as its own run would
(tiny sizes; nothing here is timed)."""

from __future__ import annotations

import re

import pytest
import torch
from helpers import load_script


def test_stacked_members_match_their_separate_runs():
    ens = load_script("bench_ensemble")
    assert ens.check_equal("l2-16", members=3, batch=8, steps=4) < 1e-5


def test_one_stacked_step_moves_each_member_like_its_own_step():
    ens = load_script("bench_ensemble")
    models = ens.separate_models("l1-8", members=2)
    stacked = ens.stacked_from(models)
    before = [w.detach().clone() for w, _ in stacked]
    opts = [ens.make_adam([p for layer in m for p in layer]) for m in models]
    opt = ens.make_adam([p for layer in stacked for p in layer])
    gen = torch.Generator().manual_seed(0)
    xs, ys = torch.rand(2, 4, 784, generator=gen), torch.randint(0, 10, (2, 4), generator=gen)
    ens.step_separate(models, opts, xs, ys)
    ens.step_stacked(stacked, opt, xs, ys)
    for i, (w, _) in enumerate(stacked):
        assert not torch.equal(w.detach(), before[i])  # the step did something
        for j, m in enumerate(models):
            torch.testing.assert_close(w[j].detach(), m[i][0].detach())
    # members start from different seeds, so a swapped stack would not pass the check above
    assert not torch.equal(models[0][0][0], models[1][0][0])


def test_prints_speed_up_per_arch(capsys):
    ens = load_script("bench_ensemble")
    code = ens.main(
        [
            "--archs",
            "l1-8",
            "l2-16",
            "--members",
            "2",
            "--batch",
            "4",
            "--threads",
            "1",
            "--warmup",
            "1",
            "--rounds",
            "2",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert re.search(r"max \|diff\| = \d\.\d\de-?\+?\d+", out)
    for arch in ("l1-8", "l2-16"):
        assert re.search(rf"^ +{arch} +[\d.]+ +[\d.]+ +[\d.]+$", out, re.M), arch
    assert "weighted by their step time: speed-up" in out


@pytest.mark.parametrize("args", [["--archs", "l0-8"], ["--members", "1"]])
def test_bad_input_is_one_line_and_exit_2(args, capsys):
    assert load_script("bench_ensemble").main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench_ensemble: error:") and err.count("\n") == 1
