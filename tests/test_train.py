from __future__ import annotations

import math
import platform

import pytest
import torch
from helpers import compose_config, small_overrides

from asym_sweep import dropout, native, provenance, records, resources, train
from asym_sweep.config import CONF_DIR
from asym_sweep.records import run_dir


def run_small(tiny_data, runs_root, **extra):
    cfg = compose_config(small_overrides(tiny_data, runs_root, **extra))
    return train.run(cfg, run_dir(cfg), log=lambda m: None), run_dir(cfg)


@pytest.mark.parametrize("method", ["dropout", "topk", "complete", "partial"])
def test_one_epoch_writes_a_complete_result(tiny_data, tmp_path, method):
    result, folder = run_small(tiny_data, tmp_path / "runs", method=method)
    on_disk, problem = records.read_result(folder)
    assert problem is None and on_disk == result
    assert result.status == "completed" and result.method == method
    assert result.epochs == 1 and len(result.history) == 1
    epoch = result.history[0]
    for key in ("train_loss", "val_loss", "val_acc", "test_loss", "test_acc", "backward_s", "select_s"):
        assert key in epoch
    t = result.timing
    assert t.backward_s > 0 and t.forward_s > 0 and t.optimizer_s > 0 and t.wall_s > 0
    assert t.product_s == pytest.approx(t.backward_s - t.select_s)
    # l1-32: top-k's k=40 covers both layers (32 and 10 units), so it is dense backprop there and
    # selects nothing; partial and complete still select among the 784 inputs.
    assert (t.select_s > 0) == (method in ("partial", "complete"))
    assert result.n_train == 250 and result.n_val == 50 and result.n_test == 100
    assert result.config["method"]["name"] == method
    env = result.environment
    assert env.torch and env.device == "cpu"
    # what the report needs to judge a timing and name the code that made it
    assert env.threads == 1 and env.jobs == 1 and env.cores >= 1
    assert len(env.loadavg_start) == 3 and env.other_busy_cores >= 0
    assert env.cpu == resources.cpu_description()  # the machine of the timings (a VM can change host)
    assert env.git_commit == provenance.source_revision()["git_commit"] and env.package_version
    assert all(h["other_busy_cores"] >= 0 for h in result.history)
    # allocator.keep_freed_memory took effect (glibc) and the record says so
    assert result.environment.malloc_keeps_freed_memory is (platform.libc_ver()[0] == "glibc")
    assert result.environment.compiled_row_topk is (native.helper() is not None)
    assert result.environment.compiled_dropout_mask is dropout.helper_masks_agree()
    assert not (folder / records.CHECKPOINT_FILE).exists()


def test_flop_figures_match_the_rule(tiny_data, tmp_path):
    result, _ = run_small(tiny_data, tmp_path / "runs", method="topk", arch="l1-64")
    examples = 250
    dense = 64 * 784 + 2 * 10 * 64
    topk = 40 * 784 + 2 * 10 * 64
    assert result.flops.dense_backward_madds == dense * examples
    assert result.flops.backward_madds == topk * examples
    assert result.flops.ratio_to_dense == pytest.approx(topk / dense)


def test_same_seed_same_numbers_other_seed_differs(tiny_data, tmp_path):
    a, _ = run_small(tiny_data, tmp_path / "a", method="dropout", **{"train.epochs": 2})
    b, _ = run_small(tiny_data, tmp_path / "b", method="dropout", **{"train.epochs": 2})
    c, _ = run_small(tiny_data, tmp_path / "c", method="dropout", seed=1, **{"train.epochs": 2})
    assert _history_without_times(a) == _history_without_times(b)
    assert _history_without_times(a) != _history_without_times(c)


def test_toy_data_is_learned(tiny_data, tmp_path):
    result, _ = run_small(tiny_data, tmp_path / "runs", **{"train.epochs": 3, "arch": "l2-64"})
    assert result.final["val_acc"] > 0.5  # 10 classes: chance is 0.1


def test_nan_loss_raises(tiny_data, tmp_path):
    with pytest.raises(train.TrainingDiverged):
        run_small(tiny_data, tmp_path / "runs", method="dropout", **{"train.optim.lr": 1e30})


def test_real_fashion_mnist_slice(shared_data, tmp_path):
    result, _ = run_small(
        shared_data, tmp_path / "runs", **{"dataset.val_size": 5000, "dataset.train_limit": 2000, "arch": "l1-64"}
    )
    assert result.n_train == 2000 and result.n_val == 5000 and result.n_test == 10000
    assert result.final["val_acc"] > 0.5


def test_fused_adam_matches_the_default_implementation():
    from asym_sweep.train import make_adam

    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(40, 30))
    b = torch.nn.Parameter(a.detach().clone())
    fused, default = make_adam([a]), torch.optim.Adam([b], lr=1e-3)
    assert fused.defaults["fused"] and not default.defaults.get("fused")
    for _ in range(50):
        g = torch.randn(40, 30)
        a.grad, b.grad = g.clone(), g.clone()
        fused.step()
        default.step()
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert not torch.equal(a, torch.zeros_like(a))


METHOD_FILES = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))


@pytest.mark.parametrize("method", METHOD_FILES)
def test_every_method_config_trains_and_counts_its_flops(tiny_data, tmp_path, method):
    result, _ = run_small(tiny_data, tmp_path / "runs", method=method, arch="l2-64", **{"train.epochs": 2})
    assert result.status == "completed" and len(result.history) == 2
    assert math.isfinite(result.final["val_loss"])
    flops = result.flops
    for key in ("backward_madds", "dense_backward_madds", "forward_madds", "dense_forward_madds"):
        assert getattr(flops, key) > 0
    steps_examples = 250 * 2
    assert flops.dense_forward_madds == steps_examples * (784 * 64 + 64 * 64 + 64 * 10)
    if method == "dropout":
        assert flops.ratio_to_dense == 1.0
    elif method != "vrpge":  # vrpge runs two sub-networks per step, checked in test_vrpge.py
        assert flops.ratio_to_dense < 1.0


STATEFUL = [
    ("swat", {"method.params.period": 3}),
    ("topk_anneal_val", {"method.params.k": 20, "method.params.min_k": 2}),
    ("topk_anneal_epoch", {"method.params.k": 20, "method.params.milestones": "[2,3]"}),
    ("random", {}),
    ("vrpge", {}),
]


@pytest.mark.parametrize("method,extra", STATEFUL, ids=[m for m, _ in STATEFUL])
def test_interrupted_run_resumes_to_identical_numbers(tiny_data, tmp_path, monkeypatch, method, extra):
    """Rule state (thresholds, annealed k, masks, random streams) is checkpointed with the model."""
    settings = {"method": method, "arch": "l2-32", "train.epochs": 3, **extra}
    whole, _ = run_small(tiny_data, tmp_path / "whole", **settings)

    real_epoch, calls = train.train_epoch, []

    def dies_in_epoch_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train, "train_epoch", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        run_small(tiny_data, tmp_path / "cut", **settings)
    monkeypatch.setattr(train, "train_epoch", real_epoch)
    resumed, _ = run_small(tiny_data, tmp_path / "cut", **settings)

    assert resumed.resumed_at_epochs == [1]
    assert _history_without_times(resumed) == _history_without_times(whole)
    assert resumed.flops == whole.flops


def test_a_run_resumed_on_another_cpu_records_both(tiny_data, tmp_path, monkeypatch):
    """Its epochs were timed on two machines: the record names both, so the report flags its times."""
    settings = {"method": "topk", "arch": "l2-32", "train.epochs": 2}
    real_epoch, real_cpu = train.train_epoch, resources.cpu_description

    def dies_in_epoch_two(*args, **kwargs):
        if dies_in_epoch_two.calls == 1:
            raise KeyboardInterrupt
        dies_in_epoch_two.calls += 1
        return real_epoch(*args, **kwargs)

    dies_in_epoch_two.calls = 0
    monkeypatch.setattr(train, "train_epoch", dies_in_epoch_two)
    monkeypatch.setattr(resources, "cpu_description", lambda *a: "Other CPU, AVX2")
    with pytest.raises(KeyboardInterrupt):
        run_small(tiny_data, tmp_path / "runs", **settings)
    monkeypatch.setattr(train, "train_epoch", real_epoch)
    monkeypatch.setattr(resources, "cpu_description", real_cpu)
    resumed, _ = run_small(tiny_data, tmp_path / "runs", **settings)
    assert [h["cpu"] for h in resumed.history] == ["Other CPU, AVX2", real_cpu()]
    assert resumed.environment.cpu == " / ".join(sorted({"Other CPU, AVX2", real_cpu()}))
    assert train.run_cpus([{"cpu": "A"}, {}]) == "? / A"  # an epoch checkpointed before epochs named their CPU


def _history_without_times(record: dict) -> list[dict]:
    """A run's per-epoch history without what the clock and the machine's load decide."""
    return [{k: v for k, v in h.items() if not k.endswith("_s") and k != "other_busy_cores"} for h in record.history]
