from __future__ import annotations

import dataclasses
import gzip

import pytest
import torch
from conftest import make_idx_dataset

from asym_sweep import data
from asym_sweep.data import DataError, load_splits, shuffled_batches


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("name,folder", [("fashion_mnist", "FashionMNIST"), ("mnist", "MNIST")])
def test_reads_and_splits_test_written_idx(tmp_path, compress, name, folder):
    make_idx_dataset(tmp_path, folder, n_train=120, n_test=30, compress=compress)
    splits = load_splits(name, str(tmp_path), val_size=20)
    assert splits.sizes() == {"train": 100, "val": 20, "test": 30}
    assert splits.train_x.shape == (100, 784) and splits.train_x.dtype == torch.float32
    assert 0.0 <= float(splits.train_x.min()) and float(splits.train_x.max()) == 1.0
    # The validation set is the *first* images of the training file (thesis 9.1.2).
    full = load_splits(name, str(tmp_path), val_size=0)
    assert torch.equal(splits.val_x, full.train_x[:20]) and torch.equal(splits.train_x, full.train_x[20:])
    limited = load_splits(name, str(tmp_path), val_size=20, train_limit=7)
    assert limited.sizes()["train"] == 7


def test_flat_debian_layout_and_env_var(tmp_path, monkeypatch):
    make_idx_dataset(tmp_path / "x", "FashionMNIST", n_train=60, n_test=10)
    flat = tmp_path / "flat"
    (tmp_path / "x" / "FashionMNIST" / "raw").rename(flat)
    monkeypatch.setenv(data.ENV_VAR, str(flat))
    splits = load_splits("fashion_mnist", str(tmp_path / "nothing-here"), val_size=10)
    assert splits.source == str(flat)


def _no_debian(monkeypatch):
    info = dataclasses.replace(data.DATASETS["fashion_mnist"], debian_dir=None)
    monkeypatch.setitem(data.DATASETS, "fashion_mnist", info)


def test_missing_data_names_every_place_searched(tmp_path, monkeypatch):
    _no_debian(monkeypatch)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "env"))
    with pytest.raises(DataError) as err:
        load_splits("fashion_mnist", str(tmp_path / "cfg"), 10)
    text = str(err.value)
    assert str(tmp_path / "cfg" / "FashionMNIST" / "raw") in text and str(tmp_path / "env") in text
    assert "make data" in text and "\n" not in text


def test_truncated_file_is_named(tmp_path):
    make_idx_dataset(tmp_path, "MNIST", n_train=60, n_test=10, compress=False)
    bad = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(DataError, match=f"{bad}.*truncated or damaged"):
        load_splits("mnist", str(tmp_path), 10)


def test_bad_magic_and_bad_gzip_are_named(tmp_path):
    make_idx_dataset(tmp_path, "MNIST", n_train=60, n_test=10, compress=True)
    labels = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(labels, "wb") as f:
        f.write(b"\x12\x34\x08\x01" + b"\x00" * 10)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: not a valid IDX file"):
        load_splits("mnist", str(tmp_path), 10)
    labels.write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: cannot be read"):
        load_splits("mnist", str(tmp_path), 10)


def test_count_mismatch_and_label_range(tmp_path):
    from conftest import write_idx

    make_idx_dataset(tmp_path, "MNIST", n_train=60, n_test=10, compress=False)
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "t10k-labels-idx1-ubyte", torch.zeros(9, dtype=torch.uint8), compress=False)
    with pytest.raises(DataError, match="10 images but .* 9 labels"):
        load_splits("mnist", str(tmp_path), 10)
    write_idx(raw / "t10k-labels-idx1-ubyte", torch.full((10,), 12, dtype=torch.uint8), compress=False)
    with pytest.raises(DataError, match="label 12 is out of range"):
        load_splits("mnist", str(tmp_path), 10)


def test_checksum_is_checked_for_official_sized_files(tmp_path):
    from conftest import write_idx

    # A labels file of the official size (60,000 labels) but the wrong bytes.
    make_idx_dataset(tmp_path, "FashionMNIST", n_train=60, n_test=10, compress=False)
    path = tmp_path / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte"
    write_idx(path, torch.zeros(60000, dtype=torch.uint8), compress=False)
    with pytest.raises(DataError, match="checksum .* does not match"):
        load_splits("fashion_mnist", str(tmp_path), 10)


def test_val_size_too_large(tmp_path):
    make_idx_dataset(tmp_path, "MNIST", n_train=30, n_test=10)
    with pytest.raises(DataError, match="lower dataset.val_size"):
        load_splits("mnist", str(tmp_path), 30)


def test_shuffled_batches_are_seeded_and_cover_everything():
    x, y = torch.arange(23.0).unsqueeze(1), torch.arange(23)
    first = [b[1] for b in shuffled_batches(x, y, 5, torch.Generator().manual_seed(4))]
    again = [b[1] for b in shuffled_batches(x, y, 5, torch.Generator().manual_seed(4))]
    assert [len(b) for b in first] == [5, 5, 5, 5, 3]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert sorted(torch.cat(first).tolist()) == list(range(23))


def test_real_fashion_mnist_is_verified(shared_data):
    splits = load_splits("fashion_mnist", str(shared_data))
    assert splits.sizes() == {"train": 55000, "val": 5000, "test": 10000}
    assert torch.bincount(splits.test_y).tolist() == [1000] * 10


@pytest.mark.parametrize("layout", ["torchvision", "debian"])
def test_real_data_tests_find_every_layout_the_runner_accepts(tmp_path, monkeypatch, layout):
    """Issue 15.7: with Debian's flat folder in ASYM_SWEEP_DATA the data-backed tests ran as skipped."""
    from conftest import make_idx_dataset, real_data_dir

    make_idx_dataset(tmp_path / "tv", "FashionMNIST")
    raw = tmp_path / "tv" / "FashionMNIST" / "raw"
    if layout == "debian":  # /usr/share/datasets/fashion-mnist: the four files, no subfolders
        flat = tmp_path / "fashion-mnist"
        flat.mkdir()
        for f in raw.iterdir():
            f.rename(flat / f.name)
        root, expected = flat, flat
    else:
        root, expected = tmp_path / "tv", raw
    monkeypatch.setenv("ASYM_SWEEP_DATA", str(root))
    assert real_data_dir() == expected
    assert len(load_splits("fashion_mnist", str(real_data_dir()), val_size=50).train_y) == 250
