"""Gradients bit-identical to those of the code before the restructure of issue 16, on every rule,
both scopes, through the functional path and three training steps (``scripts/grad_fingerprint.py``
wrote ``tests/data/grad_fingerprints.json`` from that code; partial connectivity's entries are
its per-example-input default, and ``partial_xbatch`` the batch-scope reading that was its default
then, still equal to that code's). Bitwise equality holds for one torch
build on one kind of CPU only (the file's were made on the project's AMD EPYC AVX-512 host; an
Intel Xeon with AVX-512 rounds differently): elsewhere this test says so and skips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import load_script

GOLDEN = Path(__file__).resolve().parent / "data" / "grad_fingerprints.json"


def test_every_rule_computes_exactly_what_it_computed_before():
    script = load_script("grad_fingerprint")
    golden = json.loads(GOLDEN.read_text())
    if golden["platform"] != script.platform_key():
        pytest.skip(f"fingerprints were made on {golden['platform']}, this is {script.platform_key()}")
    now = script.fingerprints()
    # A rule or method added since has no fingerprint to keep: only the recorded ones are compared.
    assert set(golden["rules"]) <= set(now["rules"]), f"gone: {sorted(set(golden['rules']) - set(now['rules']))}"
    changed = [key for key in golden["rules"] if now["rules"][key] != golden["rules"][key]]
    assert not changed, f"gradients changed bit for bit: {changed}"
