"""Every backward rule, one module per source document; importing this package registers them all.

* ``thesis.py``: the thesis' dense, top-k, partial and complete rules (Srivastava 2022);
* ``meprop.py``: meProp's variants (k as a fraction, annealed k, norm-limited k) and random k;
* ``swat.py``: SWAT and SAW (sparse weights and activations);
* ``vrpge.py``: VR-PGE's learned neuron masks, with its own training procedure;
* ``families.py``: the bases the thesis' rules and meProp's variants share.

A rule module imports only the engine (``engine/rule.py``, ``engine/gradients.py``,
``selection.py``, and for a rule with its own step ``engine/autograd.py`` and
``engine/procedure.py``). A new module of rules is added to the import below; a new rule in an
existing module needs nothing here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from asym_sweep.engine.rule import RULES, BackwardRule
from asym_sweep.rules import meprop, swat, thesis, vrpge  # noqa: F401  (registration)


def list_rules() -> list[str]:
    """The names of every registered rule."""
    return sorted(RULES)


def make_rule(method: str, scope: str = "batch", **params: Any) -> BackwardRule:
    """The one way to build a rule (the method files' `methods.MethodConfig.make_rule` and
    `sparse.sparse_linear` come here): a registered rule with ``params``, every kind of bad input
    turned into one `ValueError` that says what is wrong and what the rule takes."""
    if method not in RULES:
        raise ValueError(f"unknown method {method!r}; registered rules: {', '.join(sorted(RULES))}")
    cls = RULES[method]
    accepted = [f.name for f in dataclasses.fields(cls) if f.name != "scope"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no parameters"
        raise ValueError(f"method {method!r} does not take {', '.join(unknown)} (it takes {takes})")
    missing = [f.name for f in dataclasses.fields(cls) if _required(f) and params.get(f.name) is None]
    if missing:
        raise ValueError(f"method {method!r} needs {' and '.join(missing)}")
    return cls(scope=scope, **params)


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
