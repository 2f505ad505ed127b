"""Copy the finished runs of the reproduction into ``results/`` (the published records).

    python scripts/publish_results.py --runs /path/to/runs         # make publish RUNS=/path/to/runs

Only what the reproduction is made of, and only its records (``result.json`` and
``.hydra/config.yaml``; no checkpoints, no logs):

* ``results/<dataset>/<arch>/<tag>/seed<N>/``: completed runs of the thesis grid (a thesis
  method's grid tag, `grid.ThesisGrid.tags`, which names its settings; seeds below 5);
* ``results/readings/<dataset>/<arch>/<tag>/seed<N>/``: completed runs of a reading of
  ``conf/reading`` that are not grid runs: the readings panel (cells of ``grid.PANEL``, seeds
  below 3) and a reading's runs on other grid cells (seeds below 5), such as the standardised
  dropout runs made while that was the grid's baseline (`dropout_standard`);
* ``results/rules/<dataset>/<arch>/<tag>/seed<N>/``: completed runs of the rules experiment
  (``+experiment=rules``: a `grid.rule_methods` method that is not a thesis method, on the panel,
  seeds below 3).

A folder counts only when its saved config's run tag is the folder's own (`records.run_tag`).

A record already published is left alone when it is the same run, and refused, with a message,
when it differs: a published number is never silently replaced.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from asym_sweep import grid, paths, records
from asym_sweep.config import CONF_DIR
from asym_sweep.launch import register_configs

ROOT = Path(__file__).resolve().parents[1]


def reading_tags() -> set[str]:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return {records.run_tag(compose(config_name="config", overrides=[f"+reading={r}"])) for r in grid.readings()}


def destination(
    folder: Path,
    config: dict,
    out: Path,
    thesis_tags: set[str],
    readings: set[str],
    rules: set[str] = frozenset(),
) -> Path | None:
    dataset, arch, tag, seed = records.folder_key(folder)
    if tag != records.run_tag(config):
        return None  # a folder made under another layout: not a record of ours
    on_grid = arch in grid.ARCHS.get(dataset, ()) and seed < grid.GRID_SEEDS
    if tag in thesis_tags and on_grid:
        return out / dataset / arch / tag / folder.name
    on_panel = arch in grid.PANEL and seed < grid.PANEL_SEEDS
    if tag in readings and dataset == "fashion_mnist" and (on_panel or on_grid):
        return out / "readings" / dataset / arch / tag / folder.name
    if tag in rules and dataset == "fashion_mnist" and on_panel:
        return out / "rules" / dataset / arch / tag / folder.name
    return None


def publish(runs: Path, out: Path) -> tuple[int, int, list[str]]:
    """``(published, unchanged, refused)``."""
    thesis_tags, readings = set(grid.load_grid().tags.values()), reading_tags()
    rules = set(grid.load_grid(methods=grid.rule_methods()).tags.values()) - thesis_tags
    new = same = 0
    refused: list[str] = []
    for folder in records.run_folders(runs):
        result, _ = records.read_result(folder)
        if result is None or not result.completed:
            continue
        dest = destination(folder, result.config, out, thesis_tags, readings, rules)
        if dest is None:
            continue
        if (dest / records.RESULT_FILE).is_file():
            if records.read_result(dest)[0] == result:
                same += 1
            else:
                refused.append(f"{dest}: published with other numbers; kept (remove it by hand to replace it)")
            continue
        (dest / records.HYDRA_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / records.RESULT_FILE, dest / records.RESULT_FILE)
        config = folder / records.HYDRA_DIR / records.CONFIG_FILE
        if config.is_file():
            shutil.copy2(config, dest / records.HYDRA_DIR / records.CONFIG_FILE)
        else:
            records.write_bytes_atomic(
                dest / records.HYDRA_DIR / records.CONFIG_FILE, json.dumps(result.config, indent=1).encode()
            )  # YAML reads JSON
        new += 1
    return new, same, refused


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--runs", type=Path, default=Path(paths.RUNS), help=f"a runs root (the sweep's runs_root; default {paths.RUNS})"
    )
    p.add_argument("--out", type=Path, default=ROOT / paths.RESULTS)
    args = p.parse_args(argv)
    if not args.runs.is_dir():
        print(f"publish_results: error: no runs folder at {args.runs}", file=sys.stderr)
        return 2
    new, same, refused = publish(args.runs, args.out)
    print(f"published {new} runs, {same} already published, {len(refused)} refused")
    for line in refused:
        print(f"  {line}")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
