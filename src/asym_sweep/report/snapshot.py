"""A figure as a PNG, rendered by headless Chromium from its own HTML page.

Plotly's static export needs kaleido, whose current releases need a newer plotly than the one
this project pins (kaleido 1.x refuses plotly 5); Debian's ``chromium`` renders the figure's
page directly instead. Without a Chromium the report says so and writes no image.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import plotly.graph_objects as go

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Chromium's connections fail on a closed network; these keep it from trying.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=10000",
)


def browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def write_png(fig: go.Figure, path: Path, width: int = 1200, height: int | None = None) -> str | None:
    """Render ``fig`` to ``path``; None on success, else why not (one line)."""
    chrome = browser()
    if chrome is None:
        return "no Chromium found (apt-get install chromium)"
    height = height or int(fig.layout.height or 500)
    with tempfile.TemporaryDirectory(prefix="asym-snapshot-") as tmp:
        page = Path(tmp) / "figure.html"
        page.write_text(
            fig.to_html(
                full_html=True,
                include_plotlyjs=True,
                config={"displayModeBar": False},
                default_width=f"{width}px",
                default_height=f"{height}px",
            )
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            chrome,
            *FLAGS,
            f"--user-data-dir={tmp}/profile",
            f"--window-size={width},{height}",
            f"--screenshot={path.resolve()}",
            page.as_uri(),
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"Chromium failed ({err.__class__.__name__})"
    if done.returncode != 0 or not path.is_file():
        return f"Chromium failed (exit {done.returncode})"
    return None
