"""The package's shape: no import circle, no import against the layers, one owner per shared
definition (the grid in the presets, the run-folder layout in Hydra's config)."""

from __future__ import annotations

from helpers import compose_with_hydra, load_script
from omegaconf import OmegaConf

from asym_sweep import grid, records


def test_no_import_circle_and_no_import_against_the_layers(capsys):
    graph = load_script("import_graph")
    edges, _ = graph.graph(graph.SRC)
    assert graph.circles(edges) == []
    assert graph.arrows_up(edges) == []
    assert graph.main([]) == 0 and "circles: 0" in capsys.readouterr().out


def test_the_import_check_finds_a_circle_and_an_arrow_back_up():
    graph = load_script("import_graph")
    edges = {"engine.rule": {"model"}, "model": {"engine.rule"}, "rules.thesis": {"config"}}
    assert graph.circles(edges) == [["engine.rule", "model"]]
    up = graph.arrows_up(edges)
    assert "engine.rule (engine) imports model (model)" in up and any("a rule module imports config" in u for u in up)


def test_the_presets_sweep_the_grid_of_grid_py():
    cfg = compose_with_hydra(["+experiment=thesis_fashion"])
    params = OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=True)
    assert params["arch"].split(",") == list(grid.FASHION_ARCHS)
    assert params["method"].split(",") == list(grid.METHODS)
    assert params["seed"] == "range(0,5)"
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")  # one 1-thread job per core
    mnist = compose_with_hydra(["+experiment=thesis_mnist"])
    assert [mnist.arch] == list(grid.ARCHS["mnist"])
    assert OmegaConf.to_container(mnist.hydra.sweeper.params, resolve=True)["method"].split(",") == list(grid.METHODS)
    every = compose_with_hydra(["+experiment=thesis_grid"])
    assert OmegaConf.to_container(every.hydra.sweeper.params, resolve=True)["arch"].split(",") == list(
        grid.FASHION_ARCHS
    )


def test_hydras_run_folder_is_the_records_layout():
    for overrides in (
        [],
        ["method=partial", "arch=l2-128", "seed=3"],
        ["method=dropout", "train.epochs=2", "train.batch_size=10"],
    ):
        cfg = compose_with_hydra(overrides)
        job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        assert cfg.hydra.run.dir == str(records.run_dir(job))
        assert cfg.hydra.sweep.subdir == records.run_subdir(job)
        assert cfg.hydra.sweep.dir == job.runs_root


def test_every_default_folder_and_the_seed_counts_have_one_definition():
    """paths.py owns the folders, grid.py the seed counts: no other file of the code, the configs or
    the Makefile spells a default folder out, or gives a seed count as a number."""
    import re
    from pathlib import Path

    from asym_sweep import paths

    root = Path(__file__).resolve().parents[1]
    files = [
        *root.glob("src/asym_sweep/**/*.py"),
        *root.glob("scripts/*.py"),
        *root.glob("conf/**/*.yaml"),
        root / "Makefile",
    ]
    folders = (paths.RUNS, paths.REPORT, paths.TIMING, *paths.PUBLISHED_RUNS[1:], paths.PUBLISHED_TIMING)
    # A folder as a value (quoted, or after = or :), not a mention inside a sentence of a docstring.
    spelled = re.compile("|".join(rf"""(["'=]|: ){re.escape(f)}\b""" for f in folders))
    seeds = re.compile(r"n_seeds: *\d|--seeds\b[^\n]*default=\d|SEEDS = \d")
    found = []
    for path in files:
        if path.name == "paths.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if spelled.search(code) or (seeds.search(code) and path.name != "grid.py"):
                found.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert found == []
    assert (
        sum(
            bool(re.match(r"(GRID|PANEL)_SEEDS = \d", line))
            for line in (root / "src/asym_sweep/grid.py").read_text().splitlines()
        )
        == 2
    )


def test_the_thesis_statements_the_report_quotes_live_in_one_module():
    from pathlib import Path

    from asym_sweep.report import quoted

    report = Path(quoted.__file__).parent
    statements = [quoted.BEST_SHARES, quoted.BEATS_DROPOUT_SHARE, quoted.TOPK_TIME_RATIO, quoted.BEST_CELL]
    for path in sorted(report.glob("*.py")):
        if path.name != "quoted.py":
            code = path.read_text()
            assert not [s for s in statements if f'"{s}' in code or f" {s})" in code], f"{path.name} quotes the thesis"
