"""House style, checked: pyproject.toml's [tool.ruff] (120 columns, no unused names or imports,
one layout by `ruff format`) over the package, its tests and its scripts."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ["src", "tests", "scripts"]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args, *CHECKED], cwd=ROOT, capture_output=True, text=True)


def test_ruff_is_installed_with_the_test_extras():
    # A missing linter would pass the checks below vacuously; it comes with `pip install -e '.[test]'`.
    done = subprocess.run([sys.executable, "-m", "ruff", "--version"], capture_output=True, text=True)
    assert done.returncode == 0, "ruff is missing: pip install -e '.[test]' (make setup) installs it"


@pytest.mark.parametrize("command", [("check",), ("format", "--check")], ids=["lint", "format"])
def test_the_code_keeps_the_house_style(command):
    done = _ruff(*command)
    assert done.returncode == 0, (
        f"ruff {' '.join(command)} (fix with `ruff format` / `ruff check`):\n{done.stdout}{done.stderr}"
    )
