"""Thread policy and load measurement (resources.py), code provenance (provenance.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from asym_sweep import provenance, resources


@pytest.mark.parametrize(
    "requested,jobs,cores,busy,threads",
    [
        (3, 1, 2, None, 3),  # an explicit threads= is kept, whatever the machine
        (0, 1, 2, None, 2),  # unknown load: the job's share of the cores
        (0, 1, 2, 0.05, 2),  # an idle machine
        (0, 1, 2, 1.0, 1),  # one busy core: one thread (not two fighting for one core)
        (0, 1, 2, 2.0, 1),  # never fewer than one
        (0, 2, 2, 1.0, 1),  # two jobs on two cores
        (0, 4, 16, 2.0, 4),  # the share, when enough cores are free
        (0, 1, 16, 13.2, 3),  # fewer than the share when others hold most cores
        (0, 32, 16, None, 1),  # more jobs than cores
    ],
)
def test_choose_threads(requested, jobs, cores, busy, threads):
    assert resources.choose_threads(requested, jobs, cores, busy).threads == threads


def test_load_meter_counts_other_processes_only(monkeypatch):
    clock = {"busy": 100.0, "own": 10.0, "now": 50.0}
    monkeypatch.setattr(resources, "_busy_seconds", lambda: clock["busy"])
    monkeypatch.setattr(resources, "_own_seconds", lambda: clock["own"])
    monkeypatch.setattr(resources.time, "monotonic", lambda: clock["now"])
    meter = resources.LoadMeter()
    # 4 s later: 7 busy core-seconds in all, 3 of them this process' own -> 1 other core busy.
    clock.update(busy=107.0, own=13.0, now=54.0)
    assert meter.read() == pytest.approx(1.0)
    monkeypatch.setattr(resources, "_busy_seconds", lambda: None)
    assert meter.read() is None


def test_busy_seconds_reads_proc_stat():
    if not Path(resources.PROC_STAT).is_file():
        pytest.skip("no /proc/stat on this system")
    assert resources._busy_seconds() > 0


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_source_revision_of_a_checkout(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "one")
    clean = provenance.source_revision(repo)
    assert clean["git_commit"] == _git(repo, "rev-parse", "HEAD") and clean["git_dirty"] is False
    (repo / "untracked.txt").write_text("outputs do not make a tree dirty\n")
    assert provenance.source_revision(repo)["git_dirty"] is False
    (repo / "a.py").write_text("x = 2\n")
    assert provenance.source_revision(repo)["git_dirty"] is True


def test_source_revision_outside_git(tmp_path):
    outside = provenance.source_revision(tmp_path)
    assert outside["git_commit"] is None and outside["git_dirty"] is None
    assert outside["package_version"] == provenance.package_version()


def test_cpu_description_names_the_model_and_torchs_vector_extension(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n\nprocessor\t: "
        "1\nmodel name\t: AMD EPYC 7B13\n"
    )
    assert resources.cpu_model(str(info)) == "AMD EPYC 7B13"
    import torch

    assert resources.cpu_description(str(info)) == f"AMD EPYC 7B13, {torch.backends.cpu.get_cpu_capability()}"


def test_cpu_model_is_none_without_cpuinfo(tmp_path):
    assert resources.cpu_model(str(tmp_path / "absent")) is None
    (tmp_path / "empty").write_text("processor\t: 0\n")
    assert resources.cpu_model(str(tmp_path / "empty")) is None
    assert resources.cpu_description(str(tmp_path / "absent"))  # falls back to the platform's name


@pytest.mark.parametrize(
    "other_busy, threads, cores, expected",
    [
        (0.97, 1, 2, False),  # a quiet 2-job sweep: the other job is the launch's own
        (1.45, 1, 2, True),  # beside a test suite: the run got about 0.55 of its core (1.6x slower)
        (0.10, 2, 2, False),
        (0.40, 2, 2, True),
        (None, 1, 2, None),
    ],
)
def test_a_run_is_under_load_when_others_took_a_quarter_core_of_its_share(other_busy, threads, cores, expected):
    assert resources.under_load(other_busy, threads, cores) is expected
