"""The compiled helper: building `rowtopk.cpp` and `dropmask.cpp` once per machine, loading
them, and calling them.

torch's CPU top-k was the cost of per-example selection (docs/performance.md, "Per-example
input selection"), and its `bernoulli_` most of dropout's forward on CPUs other than Intel's;
the helper selects the same entries and draws the same masks, faster. It is optional: where no
C++ compiler is found, the build fails, or ``ASYM_SWEEP_NATIVE=0`` is set, `helper` returns
None and `selection.topk_rows` runs torch.topk, `dropout.dropout` torch's dropout, with the same
results (tests/test_native.py, tests/test_dropout.py).

It is built with OpenMP where the compiler has it, and then loads into the OpenMP runtime torch
already runs on (both name it libgomp.so.1): its parallel rows use torch's own worker threads,
which otherwise spin idle beside it. `Helper.shares_torch_threads` says whether that holds; where
it does not (no OpenMP, another runtime), the helper runs on one thread.

The library is built with the compiler found as ``$CXX`` or ``c++``/``g++`` into
``$XDG_CACHE_HOME/asym_sweep`` (``~/.cache/asym_sweep``), named by a hash of the source, the
compiler and its flags, and written under a temporary name first, so parallel jobs never load
half a file.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import math
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

log = logging.getLogger(__name__)

SOURCES = (Path(__file__).with_name("rowtopk.cpp"), Path(__file__).with_name("dropmask.cpp"))
DISABLE_ENV = "ASYM_SWEEP_NATIVE"
# Portable flags (no -march=native): the host under a VM changes, and the cache stays.
FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC")
OPENMP_FLAGS = (*FLAGS, "-fopenmp")
RNG_STATE_BYTES = 5056  # torch's CPU generator state (CPUGeneratorImplState), as `dropmask.cpp` reads it


@dataclass(frozen=True)
class Helper:
    """The loaded library and where it was built."""

    lib: ctypes.CDLL
    path: Path
    flags: tuple[str, ...]
    shares_torch_threads: bool


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "asym_sweep"


def find_compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _compiler_id(compiler: str) -> str:
    done = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30)
    return done.stdout.splitlines()[0] if done.returncode == 0 and done.stdout else compiler


def library_path(compiler: str, flags: tuple[str, ...] = OPENMP_FLAGS) -> Path:
    named_by = (
        b"".join(src.read_bytes() for src in SOURCES)
        + " ".join([_compiler_id(compiler), *flags, platform.machine()]).encode()
    )
    return cache_dir() / f"asym-helper-{hashlib.sha256(named_by).hexdigest()[:16]}.so"


def build(compiler: str, target: Path, flags: tuple[str, ...] = OPENMP_FLAGS) -> None:
    """Compile `SOURCES` into ``target`` with ``flags``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial = Path(tmp) / target.name
        cmd = [compiler, *flags, "-o", str(partial), *map(str, SOURCES)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise OSError(f"{' '.join(cmd)} failed: {done.stderr.strip()[:500]}")
        os.replace(partial, target)


def _declare(lib: ctypes.CDLL) -> None:
    fn = lib.asym_topk_rows_f32
    i64, i32, ptr = ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p
    fn.argtypes = [ptr, ptr, i64, i64, i64, i32, i32, i32, ptr]
    fn.restype = i64
    lib.asym_openmp_threads.argtypes = []
    lib.asym_openmp_threads.restype = i32
    lib.asym_bernoulli_f32.argtypes = [ptr, ptr, i64, ctypes.c_uint64]
    lib.asym_bernoulli_f32.restype = i32


def _shares_torch_threads(lib: ctypes.CDLL) -> bool:
    """Whether the helper's OpenMP runtime is torch's: its thread count follows torch.set_num_threads
    (a second runtime keeps its own, and its threads would fight torch's for the cores)."""
    before = torch.get_num_threads()
    if lib.asym_openmp_threads() != before:
        return False
    probe = 2 if before == 1 else 1
    torch.set_num_threads(probe)
    try:
        followed = lib.asym_openmp_threads() == probe
    finally:
        torch.set_num_threads(before)
    return followed and lib.asym_openmp_threads() == before


def _load(compiler: str, flags: tuple[str, ...]) -> Helper:
    path = library_path(compiler, flags)
    if not path.exists():
        build(compiler, path, flags)
    try:
        lib = ctypes.CDLL(str(path))
    except OSError:
        # A cached file that does not load (damaged, another machine's): build it again.
        build(compiler, path, flags)
        lib = ctypes.CDLL(str(path))
    _declare(lib)
    return Helper(lib=lib, path=path, flags=flags, shares_torch_threads=_shares_torch_threads(lib))


@functools.cache
def helper() -> Helper | None:
    """The helper, built if need be; None where it cannot be had (logged once, at INFO)."""
    if os.environ.get(DISABLE_ENV, "1").strip().lower() in ("0", "off", "false", "no"):
        return None
    compiler = find_compiler()
    if compiler is None:
        log.info(
            "no C++ compiler found: row-wise top-k runs on torch.topk, dropout on torch's own (same results, slower)"
        )
        return None
    failures = []
    for flags in (OPENMP_FLAGS, FLAGS):  # without OpenMP where the compiler lacks it
        try:
            return _load(compiler, flags)
        except (OSError, subprocess.SubprocessError) as err:
            failures.append(str(err))
    log.info(
        "compiled helper unavailable (%s): torch.topk runs instead, and torch's dropout (same results, slower)",
        "; ".join(failures),
    )
    return None


def applies(v: Tensor) -> bool:
    """Whether the helper can take ``v``: a non-empty contiguous float32 CPU matrix outside autograd."""
    return (
        v.device.type == "cpu"
        and v.dtype == torch.float32
        and v.dim() == 2
        and v.is_contiguous()
        and v.shape[0] > 0
        and not (v.requires_grad and torch.is_grad_enabled())
    )


def threads(found: Helper) -> int:
    """The threads the helper's rows may run on: torch's, where it shares their runtime."""
    return torch.get_num_threads() if found.shares_torch_threads else 1


def row_topk(
    found: Helper, v: Tensor, k: int, nonnegative: bool, resolve_ties: bool, n_threads: int = 1
) -> tuple[Tensor, Tensor]:
    """``v`` (one that `applies`) with all but the k largest-key entries of each row zeroed
    (1 <= k < width; keys as in `rowtopk.cpp`), and the indices of the rows it left unwritten
    for the caller: none when ``resolve_ties``, else the first row with a tie at the k-th key
    (other than among zeros) and all rows after it. ``n_threads`` (at most `threads`) splits
    the rows over that many threads where ``resolve_ties``; without it they run on one."""
    rows, n = v.shape
    out = torch.empty_like(v)
    left = torch.empty(rows, dtype=torch.int64)
    n_left = found.lib.asym_topk_rows_f32(
        v.data_ptr(), out.data_ptr(), rows, n, k, int(nonnegative), int(resolve_ties), n_threads, left.data_ptr()
    )
    return out, left[:n_left]


def bernoulli_from_state(found: Helper, state: Tensor, n: int, q: float) -> Tensor:
    """``n`` float32 draws of Bernoulli(q) (1.0 or 0.0) from ``state``, a copy of torch's CPU
    generator state (`torch.get_rng_state`), which it advances in place as torch's `bernoulli_`
    does on CPUs other than Intel's (`dropmask.cpp`). 0 <= q <= 1."""
    if state.dtype != torch.uint8 or state.numel() != RNG_STATE_BYTES or not state.is_contiguous():
        raise ValueError(
            f"expected torch's CPU generator state ({RNG_STATE_BYTES} bytes), got {state.numel()} {state.dtype}"
        )
    out = torch.empty(n)
    # u < q with u = k * 2^-53 (k the draw's low 53 bits) is k < ceil(q * 2^53): both exact.
    if found.lib.asym_bernoulli_f32(state.data_ptr(), out.data_ptr(), n, math.ceil(q * 2.0**53)) != 0:
        raise ValueError("the generator state's counters are out of range: not a CPU generator's state")
    return out
