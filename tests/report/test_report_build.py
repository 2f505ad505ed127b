import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from synthetic import write_run, write_thesis_run

from asym_sweep.report.build import ReportError, build


def report_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asym_sweep.report", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def partial_sweep(tmp_path: Path) -> Path:
    """l1-64 with all four thesis methods x 2 seeds, l3-256 with two methods, one failed run, one new rule."""
    runs = tmp_path / "runs"
    for seed in (0, 1):
        for i, tag in enumerate(["dropout-p0.4", "topk-k40", "partial-k1_40-k2_200", "complete-k170"]):
            write_thesis_run(runs, tag, seed=seed, val=0.85 + 0.01 * i + 0.002 * seed, test=0.84 + 0.01 * i, backward=1.0 + i)
    write_thesis_run(runs, "topk-k40", arch="l3-256", seed=0, val=0.88, test=0.87)
    write_thesis_run(runs, "dropout-p0.4", arch="l3-256", seed=0, val=0.89, test=0.86)
    write_thesis_run(runs, "complete-k170", arch="l3-256", seed=0, status="failed")
    write_run(runs, tag="swat-s0.7", method="swat", rule="swat", params={"sparsity": 0.7}, seed=0, val=0.83, test=0.82)
    return runs


def test_report_from_a_partial_sweep(partial_sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    report = build(partial_sweep, out, seeds=2, log=lambda _: None)
    assert (report.n_completed, report.n_failed) == (11, 1)
    assert report.coverage[0].startswith("fashion_mnist: 10 of 200 runs") and "6 of 100 cells have a run, 4 have a CI" in report.coverage[0]
    runs = pd.read_parquet(out / "data" / "runs.parquet")
    assert len(runs) == 12 and len(pd.read_csv(out / "data" / "runs.csv")) == 12
    assert len(pd.read_parquet(out / "data" / "epochs.parquet")) == 22
    for stem in ("fashion_mnist_l1-64_accuracy", "fashion_mnist_l3-256_time", "mnist_l1-512_accuracy", "fashion_mnist_l5-1024_time"):
        for ext in ("md", "html", "tex"):
            assert (out / "tables" / f"{stem}.{ext}").is_file()
    l3 = (out / "tables" / "fashion_mnist_l3-256_accuracy.md").read_text()
    assert "Table 9.27" in l3 and "missing" in l3
    assert "| Partial connectivity k1=40, k2=200 | missing |" in l3
    assert "| Complete sparsification k=170 | missing | 0.8820 (0.8776, 0.8864) | — | n/a | missing" in l3
    l1 = (out / "tables" / "fashion_mnist_l1-64_accuracy.md").read_text()
    assert "| swat-s0.7 | 0.8300 (n=1) | — |" in l1  # a new rule appears with no report change
    index = (out / "index.html").read_text()  # checked through small values: pytest would diff 5 MB on failure
    n_tables, has_fig, inlined, cdn = (index.count('<table class="results"'), "fig-fashion_mnist_l1-64_accuracy" in index,
                                       "<script>" in index, "<script src=" in index)
    assert (n_tables, has_fig, inlined, cdn) == (2 * 26 + 2, True, True, False)  # plotly.js is inlined, no network
    assert (out / "figures" / "plotly.min.js").is_file() and (out / "figures" / "fashion_mnist_l1-64_time.html").is_file()
    assert "kaleido" in report.static or "static PNG/SVG export:" in report.static


def test_rebuild_replaces_the_report_whole(partial_sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    build(partial_sweep, out, log=lambda _: None)
    (out / "stale.txt").write_text("from an older report")
    build(partial_sweep, out, log=lambda _: None)
    assert not (out / "stale.txt").exists() and (out / "index.html").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_empty_runs_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    with pytest.raises(ReportError, match="no finished runs under"):
        build(tmp_path / "runs", tmp_path / "report")
    assert not (tmp_path / "report").exists()


def test_cli_errors_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    for runs in (tmp_path / "runs", tmp_path / "absent"):
        done = report_cli("--runs", str(runs), "--out", str(tmp_path / "report"))
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("asym-sweep report: error: ")
    assert not (tmp_path / "report").exists()


def test_cli_builds_and_summarises(partial_sweep: Path, tmp_path: Path) -> None:
    done = report_cli("--runs", str(partial_sweep), "--out", str(tmp_path / "r"), "--seeds", "2")
    assert done.returncode == 0, done.stderr
    assert "11 completed runs, 1 failed" in done.stdout and "fashion_mnist: 10 of 200 runs" in done.stdout
    assert (tmp_path / "r" / "index.html").is_file()
