import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from synthetic import DROPOUT, PARTIAL, write_run, write_thesis_run

from asym_sweep.report.build import ReportError, build


def report_cli(*args: str) -> subprocess.CompletedProcess:
    # --published with no folder: only the runs given (not this checkout's results/)
    return subprocess.run(
        [sys.executable, "-m", "asym_sweep.report", *args, "--published"], capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def partial_sweep(tmp_path: Path) -> Path:
    """l1-64 with all four thesis methods x 2 seeds, l3-256 with two methods, one failed run, one new rule."""
    runs = tmp_path / "runs"
    for seed in (0, 1):
        for i, tag in enumerate([DROPOUT, "topk-k40", PARTIAL, "complete-k170"]):
            write_thesis_run(
                runs, tag, seed=seed, val=0.85 + 0.01 * i + 0.002 * seed, test=0.84 + 0.01 * i, backward=1.0 + i
            )
    write_thesis_run(runs, "topk-k40", arch="l3-256", seed=0, val=0.88, test=0.87)
    write_thesis_run(runs, DROPOUT, arch="l3-256", seed=0, val=0.89, test=0.86)
    write_thesis_run(runs, "complete-k170", arch="l3-256", seed=0, status="failed")
    write_run(runs, tag="swat-s0.7", method="swat", rule="swat", params={"sparsity": 0.7}, seed=0, val=0.83, test=0.82)
    return runs


def test_report_from_a_partial_sweep(partial_sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    report = build(partial_sweep, out, seeds=2, log=lambda _: None)
    assert (report.n_completed, report.n_failed) == (11, 1)
    assert (
        report.coverage[0].startswith("fashion_mnist: 10 of 200 runs")
        and "6 of 100 cells have a run, 4 have a CI" in report.coverage[0]
    )
    runs = pd.read_parquet(out / "data" / "runs.parquet")
    assert len(runs) == 12 and len(pd.read_csv(out / "data" / "runs.csv")) == 12
    assert len(pd.read_parquet(out / "data" / "epochs.parquet")) == 220
    for stem in ("fashion_mnist_l1-64_accuracy", "fashion_mnist_l3-256_time"):
        for ext in ("md", "html", "tex"):
            assert (out / "tables" / f"{stem}.{ext}").is_file()
    # Architectures without runs get no tables of their own: one line lists them (issue 15.8).
    assert not (out / "tables" / "mnist_l1-512_accuracy.md").exists()
    l3 = (out / "tables" / "fashion_mnist_l3-256_accuracy.md").read_text()
    assert "Table 9.27" in l3 and "missing" in l3
    assert "| Partial connectivity k1=40, k2=200, x_scope=sample | missing |" in l3
    assert "| Complete sparsification k=170 | missing | 0.8820 (0.8776, 0.8864) | — | n/a | missing" in l3
    l1 = (out / "tables" / "fashion_mnist_l1-64_accuracy.md").read_text()
    assert "| swat-sparsity0.7 | 0.8300 (n=1) | — |" in l1  # a new rule appears with no report change
    index = (out / "index.html").read_text()  # checked through small values: pytest would diff 5 MB on failure
    n_tables, has_fig, inlined, cdn = (
        index.count('<table class="results"'),
        "fig-fashion_mnist_l1-64_accuracy" in index,
        "<script>" in index,
        "<script src=" in index,
    )
    # 2 archs x 2 tables, the summary's 2, the answer's 4 and its pattern and thesis-artefact tables
    assert (n_tables, has_fig, inlined, cdn) == (
        2 * 2 + 2 + 4 + 2,
        True,
        True,
        False,
    )  # plotly.js is inlined, no network
    assert "Architectures without runs (24)" in index and "mnist l1-512, " not in index.split("No runs yet for:")[0]
    assert (out / "figures" / "plotly.min.js").is_file() and (
        out / "figures" / "fashion_mnist_l1-64_time.html"
    ).is_file()
    assert report.static.startswith("static export")


def test_rebuild_replaces_the_report_whole(partial_sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    build(partial_sweep, out, log=lambda _: None)
    (out / "stale.txt").write_text("from an older report")
    build(partial_sweep, out, log=lambda _: None)
    assert not (out / "stale.txt").exists() and (out / "index.html").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_page_says_which_epoch_its_runs_report(partial_sweep: Path, tmp_path: Path) -> None:
    for epoch, words in (
        ("final", "each run reports the final epoch;"),
        ("best_val", "each run reports the epoch of best validation accuracy;"),
    ):
        build(partial_sweep, tmp_path / epoch, log=lambda _: None, static=False, epoch=epoch)
        intro = (tmp_path / epoch / "index.html").read_text().split("Does it reproduce?")[0]
        assert words in intro


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


def test_copying_the_figures_needs_their_export(partial_sweep: Path, tmp_path: Path) -> None:
    done = report_cli(
        "--runs", str(partial_sweep), "--out", str(tmp_path / "r"), "--no-static", "--copy-figures", str(tmp_path / "f")
    )
    assert done.returncode == 2 and "--copy-figures needs the PNG export" in done.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "f").exists()


def test_a_sweep_without_dropout_runs_says_why_its_time_ratios_are_missing(tmp_path: Path) -> None:
    """Issue 15.8: the time-ratio table was headers only and the heatmap blank, without a word."""
    runs = tmp_path / "runs"
    for arch in ("l1-64", "l2-64"):
        write_thesis_run(runs, "topk-k40", arch=arch)
    out = tmp_path / "report"
    build(runs, out, log=lambda _: None)
    index = (out / "index.html").read_text()
    assert "no ratio yet. A ratio needs a completed dropout run" in index
    assert "no heatmap of the backward-time ratio to dropout yet" in index and "heatmap_backward_ratio" not in index
    assert "this architecture has no completed dropout run" in (out / "index.html").read_text()
    assert not (out / "tables" / "summary_backward_ratio.md").exists()


def test_backward_times_show_a_range_never_a_negative_time(tmp_path: Path) -> None:
    """Issue 15.8: a t interval of skewed times gave `7.69 (-60.31, 75.68)`."""
    runs = tmp_path / "runs"
    for seed, backward in enumerate((1.0, 10.0, 100.0)):
        write_thesis_run(runs, "topk-k40", seed=seed, backward=backward, select=0.1)
        write_thesis_run(runs, DROPOUT, seed=seed, backward=2 * backward, select=0.0)
    build(runs, tmp_path / "report", log=lambda _: None)
    table = (tmp_path / "report" / "tables" / "fashion_mnist_l1-64_time.md").read_text()
    assert "| 37.00 (1.00–100.00) |" in table and "| 74.00 (2.00–200.00) |" in table
    assert "(-" not in table


def test_selection_and_products_do_not_share_a_colour_with_any_method() -> None:
    from asym_sweep.grid import load_grid
    from asym_sweep.report import figures

    grid = load_grid()
    THESIS_TAGS = list(grid.tags.values())
    method_colors = set(figures.method_colors(list(THESIS_TAGS) + ["swat-s0.7"], grid).values())
    times = pd.DataFrame(
        {
            "method_tag": list(THESIS_TAGS),
            "select_s_mean": 0.1,
            "product_s_mean": 1.0,
            "backward_s_mean": 1.1,
            "backward_s_min": 1.0,
            "backward_s_max": 1.2,
            "backward_ratio": 1.0,
            "thesis_ratio": 1.0,
            "flop_ratio_mean": 0.5,
        }
    )
    fig = figures.backward_bars(times, figures.method_colors(THESIS_TAGS, grid), "t", grid)
    split = {t.name: t.marker.color for t in fig.data if t.name in ("selection (top-k)", "products")}
    assert len(set(split.values())) == 2 and not set(split.values()) & method_colors


def time_table_rows(runs: Path, out: Path) -> dict[str, str]:
    """Build the report of ``runs`` and return l1-64's time table, row label -> Markdown line."""
    build(runs, out, log=lambda _: None)
    table = (out / "tables" / "fashion_mnist_l1-64_time.md").read_text()
    return {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}


def test_time_tables_flag_runs_timed_with_other_threads_or_under_load(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed in (0, 1):
        write_thesis_run(runs, DROPOUT, seed=seed, threads=1)
        write_thesis_run(runs, "topk-k40", seed=seed, threads=2)
        # complete: one seed timed while other work held both cores
        write_thesis_run(runs, "complete-k170", seed=seed, threads=1, other_busy=2.0 if seed else 0.0)
        write_thesis_run(runs, PARTIAL, seed=seed, threads=1)
    rows = time_table_rows(runs, tmp_path / "report")
    assert "threads 2 vs dropout's 1" in rows["Top-k asymmetry k=40"]
    assert "1 of 2 runs under load" in rows["Complete sparsification k=170"]
    assert rows["Partial connectivity k1=40, k2=200, x_scope=sample"].rstrip(" |").endswith("none")


def test_time_tables_flag_runs_timed_on_another_cpu(tmp_path: Path) -> None:
    """A VM that moved to another host keeps its host name: the CPU tells the timings apart, and
    a run that recorded none (older records) counts as unknown, not as the same CPU."""
    runs = tmp_path / "runs"
    for seed in (0, 1):
        write_thesis_run(runs, DROPOUT, seed=seed, cpu="EPYC, AVX512")
        write_thesis_run(runs, "topk-k40", seed=seed, cpu="EPYC, AVX2")
        write_thesis_run(runs, "complete-k170", seed=seed, cpu="EPYC, AVX2" if seed else None)
        write_thesis_run(runs, PARTIAL, seed=seed, cpu="EPYC, AVX512")
    rows = time_table_rows(runs, tmp_path / "report")
    assert "CPU EPYC, AVX2 vs dropout's EPYC, AVX512" in rows["Top-k asymmetry k=40"]
    assert "CPUs differ between seeds (? / EPYC, AVX2)" in rows["Complete sparsification k=170"]
    assert rows["Partial connectivity k1=40, k2=200, x_scope=sample"].rstrip(" |").endswith("none")


def test_published_and_your_runs_are_never_pooled(tmp_path: Path) -> None:
    published, yours = tmp_path / "results", tmp_path / "runs"
    for seed in (0, 1):
        write_thesis_run(published, "topk-k40", seed=seed, val=0.85, test=0.84)
        write_thesis_run(yours, "topk-k40", seed=seed, val=0.70, test=0.69)  # the same cell, run again
    write_thesis_run(yours, DROPOUT, seed=0)  # a cell only you have
    out = tmp_path / "report"
    build(yours, out, seeds=2, log=lambda _: None, published=[published])
    table = (out / "tables" / "fashion_mnist_l1-64_accuracy.md").read_text()
    assert "| Top-k asymmetry k=40 | 0.8500 (" in table and "| topk-k40 (yours) | 0.7000 (" in table
    runs = pd.read_csv(out / "data" / "runs.csv")
    assert sorted(runs["source"].value_counts().items()) == [("published", 2), ("yours", 3)]
    index = (out / "index.html").read_text()
    assert "2 completed runs published (results/)" in index and "3 completed runs yours" in index
    assert f"Runs read from {published} and {yours}. 5 completed runs" in index


def test_the_first_page_answers_claim_by_claim(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    accuracy = {DROPOUT: 0.85, "topk-k40": 0.87, PARTIAL: 0.86, "complete-k170": 0.80}
    backward = {DROPOUT: 2.0, "topk-k40": 1.0, PARTIAL: 1.2, "complete-k170": 1.9}
    for arch in ("l1-64", "l2-64", "l3-64", "l4-64", "l5-64"):
        for tag in accuracy:
            for seed in (0, 1):
                write_thesis_run(
                    runs,
                    tag,
                    arch=arch,
                    seed=seed,
                    val=accuracy[tag] + 0.001 * seed,
                    test=accuracy[tag] + 0.001 * seed,
                    backward=backward[tag],
                    select=0.1,
                )
    out = tmp_path / "report"
    build(runs, out, seeds=2, log=lambda _: None)
    claims = {
        line.split(" | ")[0].strip("| "): line
        for line in (out / "tables" / "answer_claims.md").read_text().splitlines()
        if line.startswith("| ") and "Claim" not in line
    }
    verdict = {k: v.split(" | ")[2] for k, v in claims.items()}
    assert verdict["top-k is the best method most often (top-k 60%, partial 28%, symmetric 12%)"] == "confirmed"
    assert verdict["complete sparsification is the worst, consistently in all the experiments"] == "confirmed"
    assert verdict["asymmetric training (top-k or partial) beats symmetric training with dropout"] == "confirmed"
    assert verdict["top-k and partial cut backpropagation time by around 50%"] == "confirmed"
    assert verdict["complete sparsification is almost as slow as ordinary backpropagation"] == "confirmed"
    assert (
        verdict["partial connectivity is better in larger networks (3-5 layers of 512-1024)"] == "unclear"
    )  # no such cell
    assert verdict["the best accuracy of all experiments is l1-512 with symmetric dropout"] == "unclear"
    index = (out / "index.html").read_text()
    assert index.index('id="answer"') < index.index('id="summary"')  # the answer comes first
    assert "MNIST (thesis Tables 9.1-9.2): its training images cannot be had" in index
    assert (out / "tables" / "answer_disagreements.md").is_file()


def test_heatmaps_with_many_methods(tmp_path: Path) -> None:
    """A runs root holding the readings panel and other rules has dozens of method tags: the depth x width
    heatmaps once failed there (Plotly's vertical spacing limit, 10 rows of panels)."""
    runs = tmp_path / "runs"
    for i in range(40):
        for arch in ("l1-64", "l2-128"):
            write_run(
                runs,
                tag=f"swat-s0.{i:02d}",
                method="swat",
                rule="swat",
                params={"sparsity": 0.5 + i / 100},
                arch=arch,
                seed=0,
                val=0.8,
                test=0.79,
            )
    build(runs, tmp_path / "report", seeds=1, log=lambda _: None)
    assert "heatmap_test_acc_fashion_mnist" in (tmp_path / "report" / "index.html").read_text()
