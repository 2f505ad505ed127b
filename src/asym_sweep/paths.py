"""Every folder the project reads or writes by default, defined once (lightning-hydra-template's
``paths`` group, here a module so that the runner, the report, the status, the timing sweep and
the publisher share it; the Makefile passes a folder only when the user names one).

Relative paths are relative to the working directory, the repository root for ``make``.
"""

from __future__ import annotations

RUNS = "outputs/runs"  # the user's runs root: RunConfig.runs_root, the report's and status' --runs
REPORT = "outputs/report"  # the report, replaced as a whole
TIMING = "outputs/timing"  # the user's timing sweeps
RESULTS = "results"  # the published reproduction's run records (scripts/publish_results.py)
# The published run roots the report reads beside the user's: the grid, the readings, the rules.
PUBLISHED_RUNS = (RESULTS, f"{RESULTS}/readings", f"{RESULTS}/rules")
PUBLISHED_TIMING = f"{RESULTS}/timing"  # the published timing sweeps (read after the user's)
