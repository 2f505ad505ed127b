"""One-off tool: transcribe the thesis' result tables (9.1-9.52) into
``src/asym_sweep/report/thesis_reference.csv``.

    python scripts/transcribe_thesis.py THESIS.txt   # the thesis as text

The CSV is committed; this script documents where every number came from and
lets anyone re-derive it. It reads the tab-separated rows that precede each
"Table 9.N:" caption. Accuracy tables hold "mean (lo, hi)" for validation and
test; time tables one "Time" row in the order dropout, topk, partial, complete.

Corrections (each also written to the CSV's ``note`` column):
- Table 9.1 (MNIST): the rows labelled "Partial Connectivity" and "Complete
  Sparsification" carry each other's numbers. The thesis' text gives complete
  sparsification val 98.58% (98.40, 98.76) / test 98.002% (97.97, 98.034) and
  partial connectivity val 98.28% (98.10, 98.46) / test 98.10% (98.01, 98.19)
  (sections 9.2.3, 9.2.4, Figures 9.5-9.8); we follow the text.
- Captions misprint the arch ("l2-l28", "14-256", "14-1024"); the arch is taken
  from the table number's place in the grid, which the captions otherwise follow.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src/asym_sweep/report/thesis_reference.csv"
ROW_METHODS = {
    "Symmetric": "dropout-p0.4",
    "Topk": "topk-k40",
    "Partial": "partial-k1_40-k2_200",
    "Complete": "complete-k170",
}
TIME_ORDER = ["dropout-p0.4", "topk-k40", "partial-k1_40-k2_200", "complete-k170"]
FASHION_ARCHS = [f"l{d}-{w}" for w in (64, 128, 256, 512, 1024) for d in range(1, 6)]
NUMBER_CI = re.compile(r"([0-9.]+)\s*\(([0-9.]+),?\s+([0-9.]+)\)")
COLUMNS = [
    "table",
    "kind",
    "dataset",
    "arch",
    "method_tag",
    "val",
    "val_lo",
    "val_hi",
    "test",
    "test_lo",
    "test_hi",
    "backward_time",
    "note",
]


def table_place(number: int) -> tuple[str, str]:
    """Table 9.1/9.2 are MNIST l1-512 (9.1.1); then pairs per Fashion-MNIST arch in the grid's order."""
    if number <= 2:
        return "mnist", "l1-512"
    return "fashion_mnist", FASHION_ARCHS[(number - 3) // 2]


def parse(text: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    pending: list[str] = []
    for line in text.splitlines():
        caption = re.match(r"Table 9\.(\d+): ", line)
        if caption:
            rows += table_rows(int(caption.group(1)), pending)
            pending = []
        elif "\t" in line:
            pending.append(line)
    return rows


def table_rows(number: int, lines: list[str]) -> list[dict[str, object]]:
    dataset, arch = table_place(number)
    base = {"table": f"9.{number}", "dataset": dataset, "arch": arch, "note": ""}
    if number % 2 == 0:
        times = next(line for line in lines if line.startswith("Time")).split("\t")[1:]
        assert len(times) == 4, (number, times)
        return [
            {**base, "kind": "time", "method_tag": tag, "backward_time": float(t)} for tag, t in zip(TIME_ORDER, times)
        ]
    out = []
    for line in lines:
        first = line.split()[0]
        if first not in ROW_METHODS:
            continue
        (val, vlo, vhi), (test, tlo, thi) = NUMBER_CI.findall(line)
        out.append(
            {
                **base,
                "kind": "accuracy",
                "method_tag": ROW_METHODS[first],
                "val": float(val),
                "val_lo": float(vlo),
                "val_hi": float(vhi),
                "test": float(test),
                "test_lo": float(tlo),
                "test_hi": float(thi),
            }
        )
    assert len(out) == 4, (number, lines)
    if number == 1:
        by_tag = {r["method_tag"]: r for r in out}
        partial, complete = by_tag["partial-k1_40-k2_200"], by_tag["complete-k170"]
        partial["method_tag"], complete["method_tag"] = "complete-k170", "partial-k1_40-k2_200"
        for row in (partial, complete):
            row["note"] = "printed table swaps the partial and complete rows; values follow the text of 9.2.3-9.2.4"
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/transcribe_thesis.py <thesis text file>", file=sys.stderr)
        return 2
    rows = parse(Path(argv[0]).read_text())
    with OUT.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in COLUMNS})
    print(f"{len(rows)} rows from {len({r['table'] for r in rows})} tables -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
