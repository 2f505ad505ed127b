"""The fused backward: `fused.cpp`, a torch C++ extension built once per machine, that computes
one layer's gradients under the thesis' batch-scope rules (top-k, partial, complete) in one call.

Why: the pure-torch path makes some fifteen Python-level calls per layer (selection, gathers,
products, the gradient sink's writes), each a few microseconds of interpreter and dispatcher
time. On narrow layers that fixed cost was larger than the products: top-k's backward was
slower than dense dropout's at widths 64-128 although it does a third of the multiply-adds
(docs/performance.md, "The fused backward"). The extension makes the same ATen calls, in the
same order, from C++: the same gradients bit for bit (tests/test_fused.py, the gradient
fingerprints), at a fraction of the fixed cost.

It is optional, as the compiled helper is (`native`): it needs a C++ compiler and the Python
headers; where either is missing, the build fails, or ``ASYM_SWEEP_NATIVE=0`` is set, `module`
returns None and every layer takes the pure-torch path, which stays the reference. The library
is built into the helper's cache folder, named by a hash of the source, the compiler, torch's
and Python's versions, and written under a temporary name first.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import platform
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import torch

from asym_sweep import native
from asym_sweep.selection import native_ties_agree

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("fused.cpp")
MODULE_NAME = "asym_sweep_fused"
FLAGS = ("-O2", "-std=c++20", "-shared", "-fPIC", "-w", f"-DTORCH_EXTENSION_NAME={MODULE_NAME}")
DISABLE_ENV = "ASYM_SWEEP_FUSED"  # =0: the pure-torch backward only (ASYM_SWEEP_NATIVE=0 turns off both compiled parts)
KINDS = ("topk", "partial", "complete")  # fused.cpp's Kind, 1-based


class FusedSpec(NamedTuple):
    """A rule's parameters as the fused backward takes them (`rule.BackwardRule.fused_spec`)."""

    kind: str  # one of KINDS
    k: int  # the sensitivities kept (top-k's k, partial's k1, complete's k)
    kx: int = 0  # the inputs kept for the weight gradient (partial's k2, complete's k)
    x_each: bool = False  # inputs selected per example (else one set per mini-batch)


class Helper(NamedTuple):
    """What the fused backward needs of the compiled helper (`native`) to select rows as `selection.topk_rows` does."""

    address: int  # of asym_topk_rows_f32; 0: none, torch.topk instead
    shares_threads: bool
    ties_agree: bool


def _torch_build_flags() -> list[str]:
    from torch.utils import cpp_extension  # only here: it imports setuptools

    abi = int(bool(torch._C._GLIBCXX_USE_CXX11_ABI))
    includes = [*cpp_extension.include_paths(), sysconfig.get_paths()["include"]]
    libs = cpp_extension.library_paths()
    return [f"-D_GLIBCXX_USE_CXX11_ABI={abi}", *(f"-I{p}" for p in includes), *(f"-L{p}" for p in libs)]


def library_path(compiler: str, flags: list[str]) -> Path:
    named_by = (
        SOURCE.read_bytes()
        + " ".join(
            [native._compiler_id(compiler), *flags, torch.__version__, platform.python_version(), platform.machine()]
        ).encode()
    )
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    return native.cache_dir() / f"asym-fused-{hashlib.sha256(named_by).hexdigest()[:16]}{suffix}"


def build(compiler: str, target: Path, flags: list[str]) -> None:
    """Compile `SOURCE` into ``target`` (about 30 s; written under a temporary name, then renamed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial = Path(tmp) / target.name
        cmd = [compiler, *flags, str(SOURCE), "-o", str(partial), "-lc10", "-ltorch", "-ltorch_cpu", "-ltorch_python"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise OSError(f"building {SOURCE.name} failed: {done.stderr.strip()[-500:]}")
        os.replace(partial, target)


def _load(path: Path) -> ModuleType:
    loader = importlib.machinery.ExtensionFileLoader(MODULE_NAME, str(path))
    spec = importlib.util.spec_from_file_location(MODULE_NAME, str(path), loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@functools.cache
def module() -> ModuleType | None:
    """The built extension, built if need be; None where it cannot be had (logged once, at INFO)."""
    if any(
        os.environ.get(name, "1").strip().lower() in ("0", "off", "false", "no")
        for name in (native.DISABLE_ENV, DISABLE_ENV)
    ):
        return None
    compiler = native.find_compiler()
    if compiler is None:
        log.info("no C++ compiler found: the backward runs on the pure-torch path (same gradients, slower)")
        return None
    try:
        flags = [*FLAGS, *_torch_build_flags()]
        path = library_path(compiler, flags)
        if not path.exists():
            build(compiler, path, flags)
        try:
            return _load(path)
        except ImportError:
            build(compiler, path, flags)  # a damaged or foreign cached file: build it again
            return _load(path)
    except (OSError, ImportError, subprocess.SubprocessError) as err:
        log.info("fused backward unavailable (%s): the pure-torch path runs (same gradients, slower)", err)
        return None


@functools.cache
def helper() -> Helper:
    """The compiled row-wise top-k as `selection.topk_rows` would use it (checked once per process)."""
    found = native.helper()
    if found is None:
        return Helper(0, False, False)
    address = ctypes.cast(found.lib.asym_topk_rows_f32, ctypes.c_void_p).value or 0
    return Helper(address, found.shares_torch_threads, native_ties_agree())


def kind_code(kind: str) -> int:
    return KINDS.index(kind) + 1
