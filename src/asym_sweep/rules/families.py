"""Bases of rule families: `OneK` (one selection size ``k``) and `SelectedSensitivities`
(meProp's backward, where only the k largest sensitivities of a layer propagate), shared by the
thesis' rules and meProp's variants."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from asym_sweep.engine.gradients import dense_grads, row_block_grads
from asym_sweep.engine.rule import BackwardRule, check_k, timed
from asym_sweep.selection import topk_columns, topk_rows


@dataclass(kw_only=True)
class OneK(BackwardRule):
    """Base of the rules with a single selection size ``k``."""

    k: int

    def __post_init__(self) -> None:
        super().__post_init__()
        check_k("k", self.k)


class SelectedSensitivities(BackwardRule):
    """meProp's backward (thesis eqs. 7.1-7.3): only the `current_k` largest sensitivities
    of a layer propagate. `TopK` fixes k; the rules of ``meprop.py`` choose it by layer
    width or anneal it over training (overriding `current_k`), or choose the entries
    at random (overriding the two selectors)."""

    def current_k(self, n_out: int) -> int:
        """The k in force for a layer of ``n_out`` neurons, at most ``n_out``."""
        raise NotImplementedError

    def select_each(self, g: Tensor, k: int) -> Tensor:
        """Sample scope: ``g`` with ``k`` entries of every row kept (by magnitude here)."""
        return topk_rows(g, k)

    def select_columns(self, g: Tensor, k: int) -> Tensor | None:
        """Batch scope: the ``k`` output neurons kept for the whole batch (None: all)."""
        return topk_columns(g, k)

    def backward(self, g, x, weight, needs, clock):  # type: ignore[override]
        k = self.current_k(g.shape[1])
        if self.scope == "sample":
            with timed(clock):
                g = self.select_each(g, k)
            return dense_grads(g, x, weight, needs)
        with timed(clock):
            rows = self.select_columns(g, k)
        return row_block_grads(g, x, weight, needs, rows)

    def backward_madds(self, batch: int, n_in: int, n_out: int, input_grad: bool) -> int:
        return batch * self.current_k(n_out) * n_in * (2 if input_grad else 1)

    def keeps_everything(self, n_in: int, n_out: int) -> bool:
        return self.current_k(n_out) >= n_out
