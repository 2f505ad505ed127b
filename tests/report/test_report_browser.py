"""Opens the built index.html in headless Chromium (Debian's ``chromium``).

`make test` tries to install it first (scripts/ensure_chromium.sh); where that
is impossible the test is skipped, saying why.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from synthetic import DROPOUT, PARTIAL, write_thesis_run

from asym_sweep.report.build import build

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    BROWSER is None, reason="Debian's chromium is not installed (make test installs it when run as root with apt)"
)
def test_index_renders_tables_and_plots_without_console_errors(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed in (0, 1):
        for i, tag in enumerate([DROPOUT, "topk-k40", PARTIAL, "complete-k170"]):
            for arch in ("l1-64", "l2-128"):
                write_thesis_run(
                    runs, tag, arch=arch, seed=seed, val=0.85 + 0.01 * i + 0.003 * seed, test=0.84, backward=1.0 + i
                )
    out = tmp_path / "report"
    build(runs, out, seeds=2, log=lambda _: None)
    page = (out / "index.html").read_text()
    expected_figures = len(re.findall(r'<div id="fig-', page))
    expected_tables = page.count('<table class="results"')
    done = subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=20000",
            "--dump-dom",
            (out / "index.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout  # counted into small values first: pytest would diff a 5 MB string on failure
    tables, rendered, svgs = dom.count('<table class="results"'), dom.count("svg-container"), dom.count("main-svg")
    # The page logs nothing itself, so any console message (an exception, a plotly error) is a failure.
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    # two per architecture with runs, and the first page's and summary's own
    assert tables == expected_tables and tables >= 2 * 2 + 2
    assert all(text in dom for text in ("Table 9.3", "Table 9.16", "0.8815 (")), "expected table cells are missing"
    # plotly adds an svg-container (holding two main-svg layers) to every graph it has drawn.
    assert expected_figures >= 5 and rendered >= expected_figures and svgs >= 2 * expected_figures
