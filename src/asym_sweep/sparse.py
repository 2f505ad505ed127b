"""Sparsified backpropagation for a linear layer: the public face of the engine and the rules.

``sparse_linear(x, W, b, method="topk", k=40)`` is ``F.linear(x, W, b)`` whose backward pass
follows a registered rule (thesis ch. 8: the forward uses every parameter, the backward only
a top-k-selected subset). For a model, use ``model.SparseLinear`` layers instead: they reuse
their gradient buffers and skip the per-call rule construction.

Where things live: the rule interface and the registry in ``engine/rule.py``, the gradient
formulas in ``engine/gradients.py``, the selection helpers in ``selection.py``, the autograd
function and the gradient sink in ``engine/autograd.py``, the rules themselves in ``rules/``
(one module per source; ``rules.make_rule`` builds one). This module re-exports the names users
import.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from asym_sweep.engine.autograd import GradSink, apply_rule
from asym_sweep.engine.gradients import LinearGrads, Needs, dense_grads, row_block_grads
from asym_sweep.engine.rule import RULES, SCOPES, BackwardRule, register_rule, timed
from asym_sweep.rules import list_rules, make_rule
from asym_sweep.rules.families import OneK, SelectedSensitivities
from asym_sweep.rules.thesis import Complete, Dense, Partial, TopK
from asym_sweep.selection import magnitude_keys, magnitudes, topk_columns, topk_rows

__all__ = [
    "RULES",
    "SCOPES",
    "BackwardRule",
    "Complete",
    "Dense",
    "GradSink",
    "LinearGrads",
    "Needs",
    "OneK",
    "Partial",
    "SelectedSensitivities",
    "TopK",
    "apply_rule",
    "dense_grads",
    "list_rules",
    "magnitude_keys",
    "magnitudes",
    "make_rule",
    "register_rule",
    "row_block_grads",
    "sparse_linear",
    "timed",
    "topk_columns",
    "topk_rows",
]


def sparse_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    method: str,
    scope: str = "sample",
    **params: Any,
) -> Tensor:
    """``F.linear(x, weight, bias)`` whose backward follows ``method`` with its ``params``.

    The forward is exactly ``F.linear`` except for rules that sparsify the
    weights of the forward too (``swat``). Raises `ValueError` on an unknown method or
    scope, a missing or invalid parameter, or a parameter the method does not take. A
    parameter given as None counts as not given.
    """
    given = {name: v for name, v in params.items() if v is not None}
    return apply_rule(make_rule(method, scope=scope, **given), x, weight, bias)
