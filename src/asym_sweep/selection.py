"""Choosing entries: the top-k and threshold helpers every rule selects with, and the one
formula for how many entries a share of a vector keeps.

All rank by magnitude, sign ignored (thesis eq. 6.3: "the k largest element ... irrespective
of the sign"). Where the caller knows a tensor has no negative entry (a ReLU output, pixels in
[0, 1]; `gradients.Needs.input_nonnegative`) it passes ``nonnegative=True`` and the ranking
skips ``abs``: the same order and the same selected values, one elementwise pass fewer.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from asym_sweep import native

# Non-negative IEEE floats order exactly as their bit patterns read as signed integers
# of the same width (+0 lowest, NaN above +inf, as topk ranks NaN), and torch.topk runs
# faster on integers (docs/performance.md, "Measurements behind choices in the code"). Same selection, cheaper.
_SAME_WIDTH_INT = {
    torch.float32: torch.int32,
    torch.float64: torch.int64,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}


def keep_count(share: float, n: int) -> int:
    """Entries kept of ``n`` when keeping a ``share`` of them: ``ceil(share * n)``, within [1, n].

    Rounded to 9 decimals first, so that 0.3 * 10 keeps 3 and not 4 (float error). meProp's
    k as a fraction of the width and SWAT's top-K% both use it (SWAT keeps 1 - sparsity).
    """
    return max(1, min(n, math.ceil(round(share * n, 9))))


def magnitudes(v: Tensor, nonnegative: bool = False) -> Tensor:
    """``|v|``; ``v`` itself when the caller knows it has no negative entry.

    The two differ only on a -0.0 entry, which sums and compares equal to +0.0 (as an
    integer key, `magnitude_keys`, it ranks lowest: still a zero magnitude).
    """
    return v if nonnegative else v.abs()


def magnitude_keys(v: Tensor, nonnegative: bool = False) -> Tensor:
    """``|v|`` in a form whose order is the order of magnitudes (integer bits where possible)."""
    a = magnitudes(v, nonnegative)
    int_dtype = _SAME_WIDTH_INT.get(a.dtype)
    return a.view(int_dtype) if int_dtype is not None and a.is_contiguous() else a


def topk_rows(v: Tensor, k: int, nonnegative: bool = False) -> Tensor:
    """Keep the ``k`` largest-magnitude entries of every row of ``v``, zero the rest.

    Float32 matrices go to the compiled helper where it could be built (`native`): the same
    entries as `topk_rows_torch` keeps, ties included, at a fraction of torch.topk's cost per
    row (docs/performance.md). Rows whose tie the helper leaves go to torch."""
    if k >= v.shape[-1]:
        return v
    found = native.helper() if native.applies(v) else None
    if found is None:
        return topk_rows_torch(v, k, nonnegative)
    # Rows that tie at the k-th key cost the helper what they cost torch (the same algorithm
    # decides them), and torch spreads its rows over its threads: the helper resolves them
    # only where it can use as many threads (torch's own, `native.threads`), else they go to
    # torch (scripts/bench_row_topk.py; docs/performance.md).
    n_threads = native.threads(found)
    resolve = native_ties_agree() and n_threads == torch.get_num_threads()
    out, left = native.row_topk(found, v, k, nonnegative, resolve_ties=resolve, n_threads=n_threads)
    if left.numel() == len(v):
        return topk_rows_torch(v, k, nonnegative)
    if left.numel():
        out.index_copy_(0, left, topk_rows_torch(v.index_select(0, left), k, nonnegative))
    return out


def topk_rows_torch(v: Tensor, k: int, nonnegative: bool = False) -> Tensor:
    """`topk_rows` on torch.topk: the reference the compiled helper keeps to (k < width)."""
    idx = magnitude_keys(v, nonnegative).topk(k, dim=-1, sorted=False).indices
    return torch.zeros_like(v).scatter_(-1, idx, v.gather(-1, idx))


@functools.cache
def native_ties_agree() -> bool:
    """Whether the helper's tie resolution keeps what torch.topk keeps here, on rows full of ties.

    Which of several tied entries torch keeps is fixed by its algorithm (std::nth_element, or
    std::partial_sort for small k, on (key, index) pairs); the helper runs the same calls, but
    compiled from this machine's C++ library, not torch's. Checked once per process on
    quantised rows (pixels tie the same way); where they disagree, tied rows go to torch."""
    found = native.helper()
    if found is None:
        return False
    gen = torch.Generator().manual_seed(0)
    for n, k in ((784, 200), (1024, 200), (1024, 10), (300, 170), (64, 1)):
        for nonnegative in (True, False):
            levels = torch.randint(-8, 9, (64, n), generator=gen).float() / 8
            v = levels.abs() if nonnegative else levels
            got, _ = native.row_topk(found, v, k, nonnegative, resolve_ties=True, n_threads=native.threads(found))
            if not torch.equal(got, topk_rows_torch(v, k, nonnegative)):
                return False
    return True


def topk_columns(v: Tensor, k: int, nonnegative: bool = False) -> Tensor | None:
    """Indices of the ``k`` columns of ``v`` with the largest summed magnitude.

    Returns None when ``k`` covers every column, so callers can take the dense
    path without gathering. ``nonnegative``: the caller knows ``v`` has no negative
    entry, and the column sums of ``v`` are those of ``|v|`` (a -0.0 entry adds as +0.0
    does and -0.0 ranks equal to +0.0), so the selection is the same without ``abs``.
    """
    if k >= v.shape[-1]:
        return None
    # Skipping abs for a known non-negative input: inside a training step the abs pass writes
    # a cold, freshly allocated output, which cost partial's and complete's selection a
    # visible share (docs/performance.md).
    s = magnitudes(v, nonnegative).sum(0)
    # Unsorted: sorting made no gather or scatter faster and cost its own time
    # (docs/performance.md).
    return s.topk(k, sorted=False).indices


def topk_whole(v: Tensor, keep: int, nonnegative: bool = False) -> tuple[Tensor, float]:
    """The ``keep`` largest-magnitude entries of all of ``v`` at once (zeros elsewhere), and the
    smallest kept magnitude (the threshold `threshold` can reuse)."""
    if keep >= v.numel():
        return v, 0.0
    # Integer keys, as in topk_rows: cheaper for a whole matrix too (docs/performance.md).
    idx = magnitude_keys(v.flatten(), nonnegative).topk(keep, sorted=False).indices
    kept = v.flatten().index_select(0, idx)
    flat = torch.zeros_like(v).flatten().index_copy_(0, idx, kept)
    return flat.view_as(v), float(kept.detach().abs().min())


def threshold(v: Tensor, at: float, nonnegative: bool = False) -> Tensor:
    """Entries of ``v`` with magnitude at least ``at``, others zero."""
    return torch.where(magnitudes(v, nonnegative) >= at, v, torch.zeros((), dtype=v.dtype, device=v.device))


# -- gathering and scattering the selected rows and columns ----------------------------------


def gather_cols(v: Tensor, idx: Tensor | None) -> Tensor:
    return v if idx is None else v.index_select(1, idx)


def gather_rows(v: Tensor, idx: Tensor | None) -> Tensor:
    return v if idx is None else v.index_select(0, idx)


def scatter_rows(block: Tensor, idx: Tensor | None, n_rows: int) -> Tensor:
    """Place the rows of ``block`` at row indices ``idx`` of a zero ``(n_rows, ...)`` tensor."""
    if idx is None:
        return block
    out = block.new_zeros((n_rows,) + tuple(block.shape[1:]))
    return out.index_copy_(0, idx, block)


def scatter_cols(block: Tensor, idx: Tensor | None, n_cols: int) -> Tensor:
    if idx is None:
        return block
    out = block.new_zeros((block.shape[0], n_cols))
    return out.index_copy_(1, idx, block)
