"""allocator.keep_freed_memory: the settings reach glibc, and with them a dense step stops page-faulting.

The comparison with glibc's default behaviour is a benchmark (``scripts/bench_page_faults.py``), not a
test: whether the default allocator trims the heap depends on the process' heap history, and one
full-suite run saw it take no faults at all. What is tested is what this project controls: the
settings are passed to ``mallopt`` and, in a fresh process, hold the heap (counted, not timed).
"""

from __future__ import annotations

import platform
import subprocess
import sys
from types import SimpleNamespace

import pytest

from asym_sweep import allocator

# Runs in a fresh process: malloc's settings belong to the whole process.
PROBE = """
import resource, sys, torch
from asym_sweep.allocator import keep_freed_memory
from asym_sweep.methods import MethodConfig
from asym_sweep.model import build_mlp, parse_arch
from asym_sweep.engine.procedure import make_procedure
from asym_sweep.timing import Timers
from asym_sweep.train import make_adam
applied = keep_freed_memory() if sys.argv[1] == "kept" else None
torch.set_num_threads(1)
arch = parse_arch("l3-1024")
model = build_mlp(arch, MethodConfig(name="dense", rule="dense").layer_rules(arch.depth + 1), 0.0, seed=0)
procedure = make_procedure(model, make_adam(model.parameters()), Timers(None), 0)
x, y = torch.randn(50, 1, 28, 28), torch.randint(0, 10, (50,))
for _ in range(5):
    procedure.step(x, y)
faults = []
for _ in range(21):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    procedure.step(x, y)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, sorted(faults)[10])
"""


def faults_per_step(mode: str) -> tuple[str, float]:
    """``(applied, median page faults of one step over 21 steps)`` in a fresh process.

    The median, not the mean: with memory kept, an occasional step still maps one fresh 4 MiB
    chunk (1024 faults) when malloc grows its heap.
    """
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout.split()
    return out[0], float(out[1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings are glibc's mallopt")
def test_with_the_settings_dense_steps_do_not_fault():
    applied, kept = faults_per_step("kept")
    assert applied == "True"
    # Three 4 MiB weight gradients per step: about 3 x 1024 pages if they went back to the kernel.
    assert kept < 100, f"median {kept} page faults per step with freed memory kept"


def test_every_setting_is_passed_to_mallopt(monkeypatch):
    calls = []

    def mallopt(param, value):
        calls.append((param, value))
        return 1

    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: SimpleNamespace(mallopt=mallopt))
    assert allocator.keep_freed_memory() is True
    assert calls == list(allocator.SETTINGS)


def test_a_refused_setting_is_reported(monkeypatch):
    def mallopt(param, value):
        return 0

    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: SimpleNamespace(mallopt=mallopt))
    assert allocator.keep_freed_memory() is False


def test_elsewhere_it_changes_nothing(monkeypatch):
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.keep_freed_memory() is False
