"""The data every report page is made from, computed once from the collected runs."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from asym_sweep.grid import ThesisGrid, load_grid, rule_methods
from asym_sweep.report import readings as rd
from asym_sweep.report import rules as rl
from asym_sweep.report import thesis as th
from asym_sweep.report.aggregate import epoch_curves, summarize
from asym_sweep.report.collect import Collection
from asym_sweep.report.sweep_times import SweepTimes


@dataclass
class Frames:
    """Everything the pages are made from."""

    grid: ThesisGrid
    collection: Collection
    summary: pd.DataFrame
    curves: pd.DataFrame
    accuracy: pd.DataFrame
    times: pd.DataFrame
    reduction: pd.DataFrame
    reference: pd.DataFrame
    readings: pd.DataFrame  # `readings.reading_table` of the runs: the readings page and the answer's ruled-out line
    epoch: str = "final"  # which epoch a run reports (`aggregate.summarize`): final, best_val or best_each
    sweep: SweepTimes | None = None  # the timing sweep the time claims use (`sweep_times.load`)
    # The rules experiment (`report.rules`): per panel cell, over the panel, the sources' claims.
    rules_cells: pd.DataFrame | None = None
    rules_panel: pd.DataFrame | None = None
    rules_claims: pd.DataFrame | None = None
    rules_coverage: tuple[int, int] = (0, 0)
    rules_ranked_cells: tuple[str, ...] = ()  # the cells the ranking is over (`rules.ranked_cells`)


def compute(
    collection: Collection,
    grid: ThesisGrid,
    epoch: str = "final",
    sweep: SweepTimes | None = None,
    rules: ThesisGrid | None = None,
) -> Frames:
    """``rules``: the rules experiment's methods (default: `grid.rule_methods` as conf/method has them)."""
    summary = summarize(collection.runs, grid.time_baselines, epoch)
    reference = th.load_reference(grid)
    times = th.time_comparison(summary, reference, grid, sweep.frame if sweep is not None else None)
    rules = rules if rules is not None else load_grid(methods=rule_methods())
    ranked = rl.ranked_cells(collection.runs, rules)
    panel = rl.panel_table(collection.runs, rules, ranked)
    return Frames(
        grid,
        collection,
        summary,
        epoch_curves(collection.epochs),
        th.accuracy_comparison(summary, reference),
        times,
        th.time_reduction_summary(times),
        reference,
        rd.reading_table(collection.runs, reference, grid),
        epoch,
        sweep,
        rl.cell_table(collection.runs, rules),
        panel,
        rl.claims_table(panel),
        rl.coverage(collection.runs, rules),
        ranked,
    )
