"""The standard training procedure: one step, rule hooks, FLOP tally, state."""

from __future__ import annotations

import torch

from asym_sweep.engine.procedure import Madds, Procedure, make_procedure
from asym_sweep.methods import MethodConfig
from asym_sweep.model import build_mlp, parse_arch
from asym_sweep.timing import Timers
from asym_sweep.train import make_adam


def procedure_for(rule: str, arch: str = "l2-64", **params) -> Procedure:
    spec = MethodConfig(name=rule, rule=rule, params=params)
    a = parse_arch(arch)
    model = build_mlp(a, spec.layer_rules(a.depth + 1), seed=0)
    return make_procedure(model, make_adam(model.parameters()), Timers(), seed=0)


def batch(n=20, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 784, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def test_standard_step_trains_and_counts():
    proc = procedure_for("topk", k=8)
    assert type(proc) is Procedure
    before = [p.detach().clone() for p in proc.model.parameters()]
    loss = proc.step(*batch())
    assert loss.requires_grad is False and proc.step_count == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, proc.model.parameters()))
    fwd, bwd = proc.model.madds(20, dense=True)
    assert fwd == 20 * (784 * 64 + 64 * 64 + 64 * 10)
    assert bwd == 20 * (784 * 64 + 2 * 64 * 64 + 2 * 64 * 10)
    record = proc.madds.record()
    assert record["dense_backward_madds"] == bwd and record["forward_madds"] == fwd
    assert record["backward_madds"] == proc.model.madds(20)[1] < bwd
    t = proc.timers.totals()
    assert t["forward"] > 0 and t["backward"] > 0 and t["optimizer"] > 0 and t["select"] > 0


def test_hooks_reach_every_layer_and_state_round_trips():
    proc = procedure_for("topk_anneal_epoch", k=16, milestones=[2], factor=0.5)
    proc.start_epoch(1, 3)
    assert proc.epoch_notes() == {"layer1_k": 8, "layer2_k": 8, "layer3_k": 8}
    proc.step(*batch())
    other = procedure_for("topk_anneal_epoch", k=16, milestones=[2], factor=0.5)
    other.load_state_dict(proc.state_dict())
    assert other.step_count == 1 and other.madds == proc.madds
    assert [r.k_now for r in other.rules] == [8, 8, 8]


def test_madds_record_ratios():
    m = Madds(forward=10, backward=30, dense_forward=20, dense_backward=40)
    r = m.record()
    assert r["ratio_to_dense"] == 0.75 and r["train_ratio_to_dense"] == 40 / 60
