"""``python -m asym_sweep.report [--runs DIR] [--out DIR]`` (``make report``); default folders: `paths`."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from asym_sweep import paths
from asym_sweep.grid import GRID_SEEDS
from asym_sweep.report.build import ReportError, build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m asym_sweep.report",
        description="Tables and figures from the runs, beside the thesis' published values (never trains).",
    )
    parser.add_argument("--runs", default=paths.RUNS, help=f"your runs root (default: {paths.RUNS})")
    parser.add_argument(
        "--published",
        nargs="*",
        default=list(paths.PUBLISHED_RUNS),
        help="roots of published runs, reported apart from yours "
        f"(default: {' '.join(paths.PUBLISHED_RUNS)}; none: --published)",
    )
    timing = [paths.TIMING, paths.PUBLISHED_TIMING]
    parser.add_argument(
        "--timing",
        nargs="*",
        default=timing,
        help=f"timing-sweep folders in order of preference, yours first (default: {' '.join(timing)}); "
        "the newest record of the first that has one answers the time claims",
    )
    parser.add_argument(
        "--out", default=paths.REPORT, help=f"report folder, replaced as a whole (default: {paths.REPORT})"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=GRID_SEEDS,
        help=f"seeds per cell of the full thesis grid, for coverage (default: {GRID_SEEDS})",
    )
    parser.add_argument(
        "--epoch",
        choices=["final", "best_val", "best_each"],
        default="final",
        help="which epoch a run reports: the last (default), that of best validation accuracy, or each accuracy's best",
    )
    parser.add_argument(
        "--no-static",
        action="store_true",
        help="skip the PNG export of the comparison and rules figures (it needs Chromium)",
    )
    parser.add_argument(
        "--copy-figures",
        metavar="DIR",
        type=Path,
        help="copy the exported PNGs (comparison.png, rules.png) into DIR (make figure: docs/figures)",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.copy_figures is not None and args.no_static:
        parser.error("--copy-figures needs the PNG export: drop --no-static")
    tty = sys.stderr.isatty()
    try:
        report = build(
            Path(args.runs),
            Path(args.out),
            args.seeds,
            static=not args.no_static,
            epoch=args.epoch,
            published=[Path(p) for p in args.published],
            timing=[Path(p) for p in args.timing],
            log=(lambda msg: sys.stderr.write(msg)) if tty else (lambda msg: None),
        )
    except ReportError as err:
        print(f"asym-sweep report: error: {err}", file=sys.stderr)
        return 2
    if tty:
        sys.stderr.write("\r\033[K")
    print(f"report: {report.n_completed} completed runs, {report.n_failed} failed")
    for line in report.coverage:
        print(f"  {line}")
    print(f"  {report.static}")
    print(f"wrote {len(report.files)} files; open {report.out_dir / 'index.html'}")
    if args.copy_figures is not None:
        pngs = sorted((report.out_dir / "figures").glob("*.png"))
        if not pngs:
            print(
                f"asym-sweep report: error: no PNG was exported ({report.static}); install chromium and run it again",
                file=sys.stderr,
            )
            return 1
        args.copy_figures.mkdir(parents=True, exist_ok=True)
        for png in pngs:
            shutil.copy2(png, args.copy_figures / png.name)
        print(f"copied {', '.join(p.name for p in pngs)} into {args.copy_figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
