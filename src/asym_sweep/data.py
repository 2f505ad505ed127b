"""MNIST and Fashion-MNIST from IDX files: find, verify, read, split, batch.

Files are looked up in torchvision's layout (``<root>/FashionMNIST/raw/*``) and
in Debian's flat layout (``/usr/share/datasets/fashion-mnist/*``), gzipped or
not. The whole dataset lives in memory as tensors; batches are index slices of
a seeded permutation, with no per-sample Python pipeline.

Split (thesis 9.1.2): the first ``val_size`` (5,000) training images are the
validation set, the rest the training set; the 10,000 test images the test set.
Pixels are scaled to [0, 1] by dividing by 255 (``scaling="unit"``: the thesis states no
other scaling), or then standardised by the training split's mean and standard deviation,
one scalar each (``"standard"``, a reading measured in docs/methods.md; per-pixel statistics
would divide the always-black border pixels by zero).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

ENV_VAR = "ASYM_SWEEP_DATA"
IMAGE_SIDE = 28
N_CLASSES = 10
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    folder: str  # torchvision's folder name under the root
    debian_dir: str | None  # where Debian's package installs the files
    debian_package: str | None
    # MD5 of the *decompressed* official files, keyed by file stem; checked when
    # a file has the official size (gzip headers differ between distributions).
    md5: dict[str, str]


DATASETS: dict[str, DatasetInfo] = {
    "fashion_mnist": DatasetInfo(
        "fashion_mnist",
        "FashionMNIST",
        "/usr/share/datasets/fashion-mnist",
        "dataset-fashion-mnist",
        {
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
        },
    ),
    # No checksum of the decompressed MNIST files is at hand here; they get the
    # structural checks (magic, shapes, sizes, counts, label range) only.
    "mnist": DatasetInfo("mnist", "MNIST", None, None, {}),
}
SCALINGS = ("unit", "standard")
TRAIN_IMAGES, TEST_IMAGES = 60_000, 10_000  # both datasets' official files
OFFICIAL_SIZES = {
    "train-images-idx3-ubyte": 47_040_016,
    "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016,
    "t10k-labels-idx1-ubyte": 10_008,
}


class DataError(RuntimeError):
    """Data that is missing or damaged; the message says which and what to do."""


@dataclass(frozen=True)
class Splits:
    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    source: str  # folder the files were read from

    def to(self, device: torch.device) -> "Splits":
        moved = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")}
        return Splits(**moved, source=self.source)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_y), "val": len(self.val_y), "test": len(self.test_y)}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def candidate_roots(configured: str | None) -> list[Path]:
    """Roots in search order: the configured one, $ASYM_SWEEP_DATA (``os.pathsep``-separated)."""
    roots = [Path(configured)] if configured else []
    roots += [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return roots


def candidate_dirs(info: DatasetInfo, configured_root: str | None) -> list[Path]:
    dirs: list[Path] = []
    for root in candidate_roots(configured_root):
        dirs += [root / info.folder / "raw", root / info.folder, root]
    if info.debian_dir:
        dirs.append(Path(info.debian_dir))
    return list(dict.fromkeys(dirs))


def _file_in(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def not_found_message(info: DatasetInfo, searched: list[Path]) -> str:
    ways = [f"`make data DATASET={info.name}`", f"set {ENV_VAR} to a folder holding {info.folder}/raw/"]
    if info.debian_package:
        ways.append(f"`apt-get install {info.debian_package}` (Debian/Ubuntu)")
    ways.append(f"`pip install torchvision` then `python -m asym_sweep.download --dataset {info.name}`")
    return f"{info.name} data not found; searched: {', '.join(map(str, searched))}. Get it with: {'; or '.join(ways)}"


def find_files(info: DatasetInfo, configured_root: str | None) -> dict[str, Path]:
    """The four IDX files of the first folder that holds all of them."""
    searched = candidate_dirs(info, configured_root)
    for directory in searched:
        found = {key: _file_in(directory, stem) for key, stem in FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    raise DataError(not_found_message(info, searched))


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: cannot be read ({err}); delete it and fetch the data again") from None


def parse_idx(raw: bytes, path: Path, expected_ndim: int) -> Tensor:
    """An unsigned-byte IDX file as a uint8 tensor, with every structural check."""
    bad = f"{path}: not a valid IDX file"
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{bad} (bad magic number); delete it and fetch the data again")
    if raw[2] != 0x08:
        raise DataError(f"{bad} (element type 0x{raw[2]:02x}, expected unsigned byte 0x08)")
    ndim = raw[3]
    if ndim != expected_ndim:
        raise DataError(f"{bad} ({ndim} dimensions, expected {expected_ndim})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{bad} (truncated header)")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(torch.tensor(dims).prod().item())
    if len(raw) != expected:
        raise DataError(
            f"{path}: {len(raw)} bytes but its header promises {expected}; the file is truncated or damaged"
        )
    data = torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8)
    return data.reshape(dims)


def _verify_checksum(info: DatasetInfo, stem: str, raw: bytes, path: Path) -> None:
    want = info.md5.get(stem)
    if want is None or len(raw) != OFFICIAL_SIZES.get(stem):
        return
    got = hashlib.md5(raw).hexdigest()
    if got != want:
        raise DataError(f"{path}: checksum {got} does not match the official {want}; the file is damaged")


def read_pair(info: DatasetInfo, images_path: Path, labels_path: Path) -> tuple[Tensor, Tensor]:
    stems = {p: p.name.removesuffix(".gz") for p in (images_path, labels_path)}
    raws = {p: _read_bytes(p) for p in stems}
    for p, raw in raws.items():
        _verify_checksum(info, stems[p], raw, p)
    images = parse_idx(raws[images_path], images_path, 3)
    labels = parse_idx(raws[labels_path], labels_path, 1)
    if tuple(images.shape[1:]) != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(f"{images_path}: images are {tuple(images.shape[1:])}, expected 28x28")
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels")
    if len(labels) and int(labels.max()) >= N_CLASSES:
        raise DataError(f"{labels_path}: label {int(labels.max())} is out of range 0-9")
    return images, labels


def load_splits(
    name: str, root: str | None, val_size: int = 5000, train_limit: int | None = None, scaling: str = "unit"
) -> Splits:
    """Read, verify and split a dataset; float32 pixels in [0, 1] (or standardised), flattened to 784."""
    info = dataset_info(name)
    files = find_files(info, root)
    train_images, train_labels = read_pair(info, files["train_images"], files["train_labels"])
    test_images, test_labels = read_pair(info, files["test_images"], files["test_labels"])
    if val_size >= len(train_labels):
        raise DataError(
            f"dataset.val_size={val_size} leaves no training images ({len(train_labels)} in "
            f"{files['train_images']}); lower dataset.val_size"
        )
    train_x, test_x = (t.reshape(len(t), -1).float().div_(255.0) for t in (train_images, test_images))
    train_y, test_y = train_labels.long(), test_labels.long()
    end = len(train_y) if train_limit is None else min(len(train_y), val_size + train_limit)
    if scaling == "standard":
        train_part = train_x[val_size:end]
        mean, std = train_part.mean(), train_part.std()
        train_x, test_x = (t.sub_(mean).div_(std) for t in (train_x, test_x))
    elif scaling != "unit":
        raise DataError(f"unknown scaling {scaling!r}; choose one of {', '.join(SCALINGS)}")
    return Splits(
        train_x=train_x[val_size:end],
        train_y=train_y[val_size:end],
        val_x=train_x[:val_size],
        val_y=train_y[:val_size],
        test_x=test_x,
        test_y=test_y,
        source=str(files["train_images"].parent),
    )


def shuffled_batches(
    x: Tensor, y: Tensor, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[Tensor, Tensor]]:
    """Mini-batches of a fresh seeded permutation; the last batch may be smaller."""
    order = torch.randperm(len(y), generator=generator).to(x.device)
    for start in range(0, len(y), batch_size):
        idx = order[start : start + batch_size]
        yield x.index_select(0, idx), y.index_select(0, idx)


def n_batches(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size
