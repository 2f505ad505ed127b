"""Every backward rule, one module per source document; importing this package registers them all.

* ``thesis.py``: the thesis' dense, top-k, partial and complete rules (Srivastava 2022);
* ``meprop.py``: meProp's variants (k as a fraction, annealed k, norm-limited k) and random k;
* ``swat.py``: SWAT and SAW (sparse weights and activations);
* ``vrpge.py``: VR-PGE's learned neuron masks, with its own training procedure.

A rule module imports only the engine (``backward.py``, ``selection.py``, and for a rule
with its own step ``autograd.py`` and ``procedure.py``). A new module of rules is added to
the import below; a new rule in an existing module needs nothing here.
"""

from __future__ import annotations

from typing import Any

from asym_sweep.backward import RULES, BackwardRule, build_rule
from asym_sweep.rules import meprop, swat, thesis, vrpge  # noqa: F401  (registration)


def list_rules() -> list[str]:
    """The names of every registered rule."""
    return sorted(RULES)


def make_rule(method: str, scope: str = "batch", **params: Any) -> BackwardRule:
    """Build a registered rule, turning every kind of bad input into one `ValueError`."""
    return build_rule(RULES, method, scope, params)
