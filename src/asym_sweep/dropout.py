"""Dropout as torch computes it, with its mask drawn by the compiled helper where that gives
torch's own mask.

The thesis' baseline is "symmetric training with dropout 0.4" (thesis 9.1.2). torch's CPU
dropout is ``input * noise`` with ``noise = empty_like(input).bernoulli_(1 - p).div_(1 - p)``
(ATen's ``_dropout_impl``). On CPUs other than Intel's, ``bernoulli_`` is a serial loop over
the CPU generator's Mersenne Twister, 0.7-1.0 ms for one (50, 1024) activation, most of
dropout's forward (docs/performance.md); on Intel's it calls MKL. `native.bernoulli_from_state`
draws the first kind's mask from the same generator state, and this module uses it only where
a one-time check (`helper_masks_agree`) finds it equal to torch's, mask and generator state
after, so a run's numbers do not depend on whether the helper was built.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from asym_sweep import native


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """``F.dropout(x, p, training)``, the same values and gradient, its mask drawn faster where it can be."""
    found = native.helper() if _applies(x, p, training) else None
    if found is None or not helper_masks_agree():
        return F.dropout(x, p, training)
    keep = 1.0 - p
    # The same three ops as torch's, on a mask from the same draws: the same floats.
    noise = torch_mask(found, x.numel(), keep).view_as(x)
    return x * noise.div_(keep)


def _applies(x: Tensor, p: float, training: bool) -> bool:
    # Where F.dropout is the identity or a product with zero, or the input is not a float32
    # CPU tensor the helper's mask can stand in for, torch's own path runs.
    # Contiguous only: torch fills its noise in the input's memory order, the helper row-major.
    return (
        training
        and 0.0 < p < 1.0
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.numel() > 0
        and x.is_contiguous()
    )


def torch_mask(found: native.Helper, n: int, keep: float) -> Tensor:
    """``torch.empty(n).bernoulli_(keep)`` drawn by the helper from the default CPU generator,
    which it leaves where torch's draw would."""
    state = torch.get_rng_state()
    mask = native.bernoulli_from_state(found, state, n, keep)
    torch.set_rng_state(state)
    return mask


@functools.cache
def helper_masks_agree() -> bool:
    """Whether the helper's masks are torch's here: the same entries and the same generator
    state after, over sizes around the Twister's 624-word refills and several keep
    probabilities. False on Intel CPUs (torch's MKL path) or where torch's generator changed.
    The global generator is restored afterwards: checking draws nothing from a run's stream."""
    found = native.helper()
    if found is None:
        return False
    saved = torch.get_rng_state()
    try:
        # A fixed state of its own (torch.manual_seed would also reseed CUDA's generators).
        torch.set_rng_state(torch.Generator().manual_seed(20221).get_state())
        for n in (1, 311, 312, 313, 624, 1025, 51200):
            for keep in (0.6, 0.5, 0.2, 0.999):
                before = torch.get_rng_state()
                expected = torch.empty(n).bernoulli_(keep)
                after = torch.get_rng_state()
                torch.set_rng_state(before)
                if not torch.equal(torch_mask(found, n, keep), expected) or not torch.equal(
                    torch.get_rng_state(), after
                ):
                    return False
        return True
    finally:
        torch.set_rng_state(saved)
