"""Shared fixtures: small IDX datasets written by the tests themselves."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
import torch

from asym_sweep.data import DataError, dataset_info, find_files

REPO = Path(__file__).resolve().parents[1]


def write_idx(path: Path, data: torch.Tensor, compress: bool) -> None:
    """Write a uint8 tensor as an IDX file (magic 0x0000 08 <ndim>, big-endian dims)."""
    header = struct.pack(">HBB", 0, 0x08, data.dim()) + struct.pack(f">{data.dim()}I", *data.shape)
    payload = header + data.to(torch.uint8).numpy().tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def make_idx_dataset(
    root: Path, folder: str, n_train: int = 300, n_test: int = 100, compress: bool = True, seed: int = 0
) -> Path:
    """A learnable toy dataset: each class lights up its own block of pixels."""
    gen = torch.Generator().manual_seed(seed)
    raw = root / folder / "raw"

    def images_for(labels: torch.Tensor) -> torch.Tensor:
        imgs = torch.randint(0, 60, (len(labels), 28, 28), generator=gen)
        for i, y in enumerate(labels.tolist()):
            imgs[i, 2 * y + 4 : 2 * y + 7, 4:24] = 255
        return imgs

    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.randint(0, 10, (n,), generator=gen)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images_for(labels), compress)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, compress)
    return root


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """A data root holding small Fashion-MNIST and MNIST look-alikes."""
    root = tmp_path / "data"
    make_idx_dataset(root, "FashionMNIST", compress=True)
    make_idx_dataset(root, "MNIST", compress=False, seed=1)
    return root


def real_data_dir() -> Path | None:
    """The folder holding Fashion-MNIST's four files, found as the runner finds them (every layout
    it accepts, in $ASYM_SWEEP_DATA or Debian's folder), or None."""
    try:
        return find_files(dataset_info("fashion_mnist"), None)["train_images"].parent
    except DataError:
        return None


@pytest.fixture
def shared_data() -> Path:
    """The real Fashion-MNIST as a data root; skipped where the runner would not find it."""
    found = real_data_dir()
    if found is None:
        pytest.skip(
            "Fashion-MNIST not found: set ASYM_SWEEP_DATA to its folder (torchvision's or Debian's layout) to run "
            "this test"
        )
    return found
