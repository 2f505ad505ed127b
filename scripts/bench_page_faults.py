"""Page faults of a dense l3-1024 training step with glibc's default malloc and with
``allocator.keep_freed_memory`` (the training loop's setting), each in a fresh process.

    python scripts/bench_page_faults.py [--repeats 3]

Counts, not times (``getrusage`` minor faults), so the figures do not depend on load; they do
depend on the heap's history, which is why this is a benchmark and not a test: the default
allocator trims the heap, and so faults, in most processes but not in all.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_allocator import PROBE  # noqa: E402  (one probe, shared with the test)


def median_faults(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout.split()
    return float(out[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="fresh processes per mode (default 3)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        print("bench_page_faults: error: --repeats must be at least 1", file=sys.stderr)
        return 2
    print("mode      median faults per step, one figure per fresh process")
    for mode in ("default", "kept"):
        figures = [median_faults(mode) for _ in range(args.repeats)]
        print(f"{mode:9} " + " ".join(f"{f:7.0f}" for f in figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
