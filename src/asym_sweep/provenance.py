"""Which code made a run: the git commit of the package's checkout, whether its tree had
uncommitted changes, and the package version. Recorded in every ``result.json`` so that a
report can say which revisions its numbers come from (a sweep runs from a fixed revision)."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def package_version() -> str | None:
    try:
        return metadata.version("asym-sweep")
    except metadata.PackageNotFoundError:
        return None


def source_revision(where: Path = PACKAGE_DIR) -> dict[str, Any]:
    """``{"git_commit", "git_dirty", "package_version"}``; commit and dirty are None outside a git checkout.

    Dirty means tracked files differ from the commit (untracked files do not count: outputs
    and caches live in the tree)."""
    commit = _git(["rev-parse", "HEAD"], where)
    status = _git(["status", "--porcelain", "--untracked-files=no"], where) if commit else None
    return {
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
        "package_version": package_version(),
    }
