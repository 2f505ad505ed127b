"""Two timing-sweep records side by side: backward ms per step and ratio to dropout (min-max over
rounds), per architecture and method, with the FLOP ratio (e.g. the code before and after a change,
or two machines).

    python scripts/timing_compare.py results/timing/A.json results/timing/B.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from asym_sweep.timing_records import TimingRecord, ratio_table


def load(path: Path) -> TimingRecord:
    return TimingRecord.from_json(json.loads(path.read_text()))


def side_by_side(a: TimingRecord, b: TimingRecord) -> list[str]:
    left = {(t["arch"], t["method"]): t for t in ratio_table(a.rows)}
    right = {(t["arch"], t["method"]): t for t in ratio_table(b.rows)}
    lines = [
        f"{'arch':8} {'method':9} {'A ms':>7} {'A ratio (min-max)':>20} {'B ms':>7} {'B ratio (min-max)':>20} "
        f"{'FLOP ratio':>10}"
    ]
    for key in [k for k in left if k in right]:
        x, y = left[key], right[key]
        lines.append(
            f"{key[0]:8} {key[1]:9} {x['backward_ms']:7.3f} {x['ratio']:6.3f} "
            f"({x['ratio_min']:.3f}-{x['ratio_max']:.3f}) "
            f"{y['backward_ms']:7.3f} {y['ratio']:6.3f} ({y['ratio_min']:.3f}-{y['ratio_max']:.3f}) "
            f"{x['flop_ratio']:10.3f}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    args = p.parse_args(argv)
    try:
        a, b = load(args.a), load(args.b)
    except (OSError, ValueError, TypeError) as err:
        print(f"timing_compare: error: {err}", file=sys.stderr)
        return 2
    for name, r in (("A", a), ("B", b)):
        m = r.machine
        print(
            f"{name}: {m.get('host')} ({m.get('cpu')}), {m.get('threads')} thread(s), revision "
            f"{(m.get('git_commit') or '?')[:10]}, "
            f"fused backward {m.get('compiled_fused_backward')}, {r.started_at}, {r.wall_s / 60:.1f} min, "
            f"other processes {r.other_busy_cores or 0:.2f} cores busy"
        )
    print("\n".join(side_by_side(a, b)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
