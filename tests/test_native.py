"""The compiled row-wise top-k (native.py, rowtopk.cpp) keeps exactly what torch.topk keeps.

Exactly, ties included: a sweep must give the same numbers whether or not a compiler was
found, and the published runs were made on torch.topk."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import torch

from asym_sweep import native, selection
from asym_sweep.sparse import sparse_linear


@pytest.fixture
def helper() -> native.Helper:
    found = native.helper()
    if found is None:
        pytest.skip("no C++ compiler on this machine: the torch path is all there is")
    return found


def _pixels(rows: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """Quantised like the datasets' pixels: ties at the k-th value in nearly every row."""
    return torch.randint(0, 256, (rows, n), generator=gen) / 255


def _special(rows: int, n: int, gen: torch.Generator) -> torch.Tensor:
    v = torch.randn(rows, n, generator=gen)
    v[v.abs() < 0.5] = 0.0
    v[:, ::7] = -0.0
    v[0, 0], v[-1, -1], v[-1, 0] = float("nan"), float("inf"), -float("inf")
    return v


KINDS = {
    "signed": (lambda r, n, g: torch.randn(r, n, generator=g), (False,)),
    "relu": (lambda r, n, g: torch.randn(r, n, generator=g).relu(), (True, False)),
    "pixels": (_pixels, (True, False)),
    "mostly_zero": (lambda r, n, g: torch.zeros(r, n).index_fill_(1, torch.tensor([0, n // 2]), 1.5), (True, False)),
    "special": (_special, (False,)),
}


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0)) and torch.equal(a.isnan(), b.isnan())


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(
    "n,k", [(2, 1), (5, 4), (40, 1), (64, 1), (300, 170), (784, 200), (1024, 10), (1024, 200), (1024, 1023)]
)
def test_helper_keeps_what_torch_keeps(helper, kind, n, k):
    make, signs = KINDS[kind]
    v = make(33, n, torch.Generator().manual_seed(n * 7 + k))
    for nonnegative in signs:
        expected = selection.topk_rows_torch(v, k, nonnegative)
        got, left = native.row_topk(helper, v, k, nonnegative, resolve_ties=True)
        assert left.numel() == 0
        assert _same(got, expected), (kind, n, k, nonnegative)
        # Through the public helper, which takes the same path here.
        assert _same(selection.topk_rows(v, k, nonnegative), expected)


@pytest.mark.parametrize(
    "rows,n,k,kind", [(170, 1024, 170, "signed"), (500, 784, 200, "pixels"), (50, 1024, 200, "relu")]
)
def test_helper_keeps_what_torch_keeps_at_the_sweeps_shapes(helper, rows, n, k, kind):
    """Complete's W~ block, a large batch of pixels, a hidden layer's input."""
    make, signs = KINDS[kind]
    v = make(rows, n, torch.Generator().manual_seed(rows))
    for nonnegative in signs:
        assert _same(selection.topk_rows(v, k, nonnegative), selection.topk_rows_torch(v, k, nonnegative))


def _nonzero_ties(v: torch.Tensor, k: int, nonnegative: bool) -> list[int]:
    """The rows whose k-th largest key is shared by more entries than the top k can take,
    other than zeros (which give the same output whichever are kept)."""
    keys = selection.magnitude_keys(v, nonnegative).long()
    kth = keys.topk(k, dim=1).values[:, -1:]
    ties = (keys > kth).sum(1) + (keys == kth).sum(1) > k
    zero_kth = v.gather(1, (keys == kth).long().argmax(1, keepdim=True)).squeeze(1) == 0
    return torch.nonzero(ties & ~zero_kth).flatten().tolist()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_rows_left_to_torch_start_at_the_first_nonzero_tie_at_the_kth_key(helper, kind):
    make, signs = KINDS[kind]
    v = make(40, 300, torch.Generator().manual_seed(3))
    k = 120
    for nonnegative in signs:
        got, left = native.row_topk(helper, v, k, nonnegative, resolve_ties=False)
        tied = _nonzero_ties(v, k, nonnegative)
        assert left.tolist() == (list(range(tied[0], 40)) if tied else [])
        done = torch.ones(40, dtype=torch.bool).index_fill_(0, left, False)
        assert _same(got[done], selection.topk_rows_torch(v, k, nonnegative)[done])
    if kind == "pixels":
        assert left.numel() > 0  # the quantised rows do tie, so the branch above was tested


def test_ties_resolve_as_torch_does_here(helper):
    """The load-time check passes on this machine: this C++ library's std::nth_element and
    std::partial_sort decide ties as torch's do. (Where it fails, tied rows go to torch:
    the same output, slower; the next test.)"""
    assert selection.native_ties_agree(), "this machine's C++ library breaks ties unlike torch's build"


def _count_torch_calls(monkeypatch) -> tuple[list[int], object]:
    """Record how many rows each call of selection.topk_rows_torch gets; returns the list and the real one."""
    calls: list[int] = []
    reference = selection.topk_rows_torch

    def counted(v, k, nonnegative=False):
        calls.append(len(v))
        return reference(v, k, nonnegative)

    monkeypatch.setattr(selection, "topk_rows_torch", counted)
    return calls, reference


@pytest.mark.parametrize("threads", [1, 2])
def test_tied_rows_go_to_torch_where_the_check_fails(helper, monkeypatch, threads):
    monkeypatch.setattr(selection, "native_ties_agree", lambda: False)
    calls, reference = _count_torch_calls(monkeypatch)
    gen = torch.Generator().manual_seed(2)
    v = torch.cat((torch.randn(5, 300, generator=gen).relu(), _pixels(6, 300, gen)))  # ties among the pixels
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = selection.topk_rows(v, 120, nonnegative=True)
    finally:
        torch.set_num_threads(before)
    tied = _nonzero_ties(v, 120, nonnegative=True)
    assert tied and tied[0] >= 5
    assert calls == [len(v) - tied[0]]  # from the first tie on, the rows go to torch
    assert torch.equal(got, reference(v, 120, nonnegative=True))


def test_inputs_the_helper_does_not_take_go_to_torch(helper):
    gen = torch.Generator().manual_seed(5)
    base = torch.randn(6, 20, generator=gen)
    others = {
        "float64": base.double(),
        "non-contiguous": torch.randn(20, 6, generator=gen).t(),
        "3-d": base.reshape(2, 3, 20),
        "empty": base[:0],
    }
    for name, v in others.items():
        assert not native.applies(v), name
        assert torch.equal(selection.topk_rows(v, 5), selection.topk_rows_torch(v, 5)), name
    tracked = base.clone().requires_grad_()
    assert not native.applies(tracked) and native.applies(tracked.detach())
    with torch.no_grad():
        assert native.applies(tracked)


def _fake_compiler(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-c++"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_a_failing_compiler_leaves_torch_in_charge(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(native, "find_compiler", lambda: _fake_compiler(tmp_path, 'echo "no such flag" >&2; exit 1'))
    with caplog.at_level("INFO", logger="asym_sweep.native"):
        assert native.helper.__wrapped__() is None
    assert "torch.topk runs instead" in caplog.text and "no such flag" in caplog.text
    # Nothing half-built is left where a later process would load it.
    assert not list((tmp_path / "cache" / "asym_sweep").glob("*.so"))


@pytest.mark.parametrize("value", ["0", "off"])
def test_the_helper_can_be_switched_off(monkeypatch, value):
    monkeypatch.setenv(native.DISABLE_ENV, value)
    assert native.helper.__wrapped__() is None


def test_the_build_is_cached_by_source_and_compiler(helper, tmp_path, monkeypatch):
    compiler = native.find_compiler()
    assert compiler is not None and helper.path == native.library_path(compiler, helper.flags) and helper.path.exists()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert native.library_path(compiler, helper.flags).parent == tmp_path / "asym_sweep"
    assert native.library_path(compiler, helper.flags).name == helper.path.name
    assert native.library_path(compiler, native.FLAGS) != native.library_path(compiler, native.OPENMP_FLAGS)


@pytest.mark.parametrize(
    "method,params",
    [
        ("partial", {"k1": 3, "k2": 5, "x_scope": "sample"}),
        ("partial", {"k1": 3, "k2": 5, "scope": "sample"}),
        ("complete", {"k": 4}),
        ("complete", {"k": 4, "scope": "sample"}),
        ("topk", {"k": 3, "scope": "sample"}),
    ],
)
def test_rules_give_the_same_gradients_with_and_without_the_helper(helper, monkeypatch, method, params):
    gen = torch.Generator().manual_seed(11)
    x = (torch.randint(0, 256, (16, 24), generator=gen) / 255).requires_grad_()  # ties, as pixels
    w = torch.randn(12, 24, generator=gen).requires_grad_()
    b = torch.randn(12, generator=gen).requires_grad_()
    g = torch.randn(16, 12, generator=gen)

    def grads() -> list[torch.Tensor]:
        for t in (x, w, b):
            t.grad = None
        sparse_linear(x, w, b, method=method, **{"scope": "batch", **params}).backward(g)
        return [x.grad.clone(), w.grad.clone(), b.grad.clone()]

    with_helper = grads()
    monkeypatch.setattr(native, "helper", lambda: None)
    without = grads()
    for a, c in zip(with_helper, without):
        assert torch.equal(a, c)


def test_a_damaged_cached_library_is_built_again(helper, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = native.library_path(native.find_compiler(), helper.flags)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a shared library")
    rebuilt = native.helper.__wrapped__()
    assert rebuilt is not None and rebuilt.path == path and path.stat().st_size > 1000
    v = torch.randn(8, 50, generator=torch.Generator().manual_seed(4))
    assert torch.equal(native.row_topk(rebuilt, v, 9, False, True)[0], selection.topk_rows_torch(v, 9))


def _with_threads(threads: int):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    return before


@pytest.mark.parametrize(
    "rows,n,k,kind",
    [
        (500, 784, 200, "pixels"),
        (50, 784, 200, "pixels"),
        (50, 1024, 200, "relu"),
        (170, 1024, 170, "signed"),
        (33, 300, 120, "special"),
        (3, 4000, 7, "pixels"),
        (2, 5000, 9, "signed"),
        (40, 300, 120, "mostly_zero"),
    ],
)
@pytest.mark.parametrize("threads", [2, 3])
def test_rows_split_over_threads_keep_what_torch_keeps(helper, rows, n, k, kind, threads):
    """The parallel path (rows split over torch's threads, ties resolved in each part) gives
    torch's output, also with more threads than cores and for fewer rows than threads."""
    make, signs = KINDS[kind]
    v = make(rows, n, torch.Generator().manual_seed(rows + n))
    before = _with_threads(threads)
    try:
        for nonnegative in signs:
            expected = selection.topk_rows_torch(v, k, nonnegative)
            got, left = native.row_topk(helper, v, k, nonnegative, resolve_ties=True, n_threads=threads)
            assert left.numel() == 0 and _same(got, expected), (kind, nonnegative)
            assert _same(selection.topk_rows(v, k, nonnegative), expected)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("shares", [True, False])
def test_tied_rows_stay_in_the_helper_only_where_it_runs_on_torchs_threads(helper, monkeypatch, shares):
    """With 2 threads: tied rows are the helper's when it shares torch's threads, else torch's."""
    monkeypatch.setattr(selection, "native_ties_agree", lambda: True)
    monkeypatch.setattr(native, "helper", lambda: native.Helper(helper.lib, helper.path, helper.flags, shares))
    calls, reference = _count_torch_calls(monkeypatch)
    v = _pixels(50, 784, torch.Generator().manual_seed(8))
    before = _with_threads(2)
    try:
        got = selection.topk_rows(v, 200, nonnegative=True)
    finally:
        torch.set_num_threads(before)
    tied = _nonzero_ties(v, 200, nonnegative=True)
    assert calls == ([] if shares else [50 - tied[0]])
    assert torch.equal(got, reference(v, 200, nonnegative=True))


class _FakeOpenMP:
    """A library whose thread count follows torch's (a shared runtime) or stays put."""

    def __init__(self, follows: bool, fixed: int) -> None:
        self.follows, self.fixed = follows, fixed

    def asym_openmp_threads(self) -> int:
        return torch.get_num_threads() if self.follows else self.fixed


def test_the_shared_runtime_is_told_by_following_torchs_thread_count():
    before = torch.get_num_threads()
    assert native._shares_torch_threads(_FakeOpenMP(True, 0))
    assert not native._shares_torch_threads(_FakeOpenMP(False, before))  # the same count, but its own
    assert not native._shares_torch_threads(_FakeOpenMP(False, 0))  # built without OpenMP
    assert torch.get_num_threads() == before


def test_this_build_runs_on_torchs_threads(helper):
    """Here (Linux, torch's libgomp.so.1 and the compiler's share a name) the helper's OpenMP
    runtime is torch's; a compiler without OpenMP gives a one-thread helper (next test)."""
    if "-fopenmp" not in helper.flags:
        pytest.skip("this compiler built the helper without OpenMP")
    assert helper.shares_torch_threads and native.threads(helper) == torch.get_num_threads()


def test_a_compiler_without_openmp_gives_a_one_thread_helper(helper, tmp_path, monkeypatch):
    real = native.find_compiler()
    body = (
        'for a in "$@"; do [ "$a" = -fopenmp ] && { echo "unsupported option -fopenmp" >&2; exit 1; }; done\n'
        f'exec {real} "$@"'
    )
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(native, "find_compiler", lambda: _fake_compiler(tmp_path, body))
    found = native.helper.__wrapped__()
    assert found is not None and found.flags == native.FLAGS and not found.shares_torch_threads
    assert native.threads(found) == 1
    v = _pixels(50, 784, torch.Generator().manual_seed(6))
    before = _with_threads(2)
    try:
        got, left = native.row_topk(found, v, 200, True, resolve_ties=True, n_threads=2)  # serial without OpenMP
    finally:
        torch.set_num_threads(before)
    assert left.numel() == 0 and torch.equal(got, selection.topk_rows_torch(v, 200, True))
