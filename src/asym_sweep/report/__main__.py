"""``python -m asym_sweep.report [--runs outputs/runs] [--out outputs/report]`` (``make report``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asym_sweep.report.build import ReportError, build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asym_sweep.report",
                                     description="Tables and figures from the runs, beside the thesis' published values (never trains).")
    parser.add_argument("--runs", default="outputs/runs", help="your runs root (default: outputs/runs)")
    parser.add_argument("--published", nargs="*", default=["results", "results/readings", "results/rules"],
                        help="roots of published runs, reported apart from yours (default: results results/readings results/rules; none: --published)")
    parser.add_argument("--timing", nargs="*", default=["outputs/timing", "results/timing"],
                        help="timing-sweep folders in order of preference, yours first (default: outputs/timing results/timing); "
                             "the newest record of the first that has one answers the time claims")
    parser.add_argument("--out", default="outputs/report", help="report folder, replaced as a whole (default: outputs/report)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per cell of the full thesis grid, for coverage (default: 5)")
    parser.add_argument("--epoch", choices=["final", "best_val", "best_each"], default="final",
                        help="which epoch a run reports: the last (default), that of best validation accuracy, or each accuracy's best")
    parser.add_argument("--no-static", action="store_true", help="skip PNG/SVG export even when kaleido is installed")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    tty = sys.stderr.isatty()
    try:
        report = build(Path(args.runs), Path(args.out), args.seeds, static=not args.no_static, epoch=args.epoch,
                       published=[Path(p) for p in args.published], timing=[Path(p) for p in args.timing],
                       log=(lambda msg: sys.stderr.write(msg)) if tty else (lambda msg: None))
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
