"""The decorator of the compiled kernels: numba's ``njit`` with IEEE arithmetic (no ``fastmath``), numpy's error
model (a division by zero gives inf or NaN, as in numpy, not an exception), the GIL released while a kernel runs,
and its compilations cached on disk.

The per-step arithmetic of the simulation (observations, reward errors, MPJPE, falls) runs in such kernels: one
call per step for the whole batch instead of some two hundred numpy calls on small arrays, whose fixed cost per
call was as large as a sixth of the physics on these machines.  Each kernel is the one implementation of what it
computes; the numpy-facing functions of :mod:`sb3_mimic.reward`, :mod:`sb3_mimic.rotations` and
:mod:`sb3_mimic.envs.batched` are thin wrappers that flatten leading axes and call it.

The cache: numba keys a cached kernel on its own source file only, so the batch's step kernel, which calls the
reward's functions from another file, would keep a stale copy of them after an edit of ``reward.py``.  So all
kernels are cached in one folder named by a digest of every file that defines one (:data:`KERNEL_SOURCES`): a
change to any of them compiles afresh.  The folder lies under ``$NUMBA_CACHE_DIR`` if set, else under the user's
cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``) in ``sb3-mimic/``, else in the system's temporary folder; where
none can be written the kernels are compiled in every process.  A first compilation takes some seconds; later
processes load the kernels in well under one.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numba
import numpy as np

#: The package's files that define kernels, relative to the package folder.
KERNEL_SOURCES = ("_jit.py", "character.py", "rotations.py", "reward.py", "envs/batched.py")  # character.py: the
# body count that the observation kernels freeze in


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _cache_dir() -> Path | None:
    """The digest-named cache folder: under ``$NUMBA_CACHE_DIR``, else the user's cache folder, else the system's
    temporary folder, whichever can be written first; ``None`` if none can (the kernels are then compiled in every
    process, not cached)."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in KERNEL_SOURCES:
        try:
            digest.update((package / name).read_bytes())
        except OSError:  # not installed as files: the name stands in
            digest.update(name.encode())
    bases = [os.environ.get("NUMBA_CACHE_DIR")]
    user_cache = os.environ.get("XDG_CACHE_HOME")
    try:
        user_cache = user_cache or str(Path.home() / ".cache")
    except RuntimeError:  # no home folder for this user
        pass
    bases.append(user_cache and str(Path(user_cache) / "sb3-mimic"))
    bases.append(str(Path(tempfile.gettempdir()) / f"sb3-mimic-{os.getuid() if hasattr(os, 'getuid') else 'user'}"))
    for base in bases:
        if base and _writable(folder := Path(base) / f"kernels-{digest.hexdigest()[:16]}"):
            return folder
    return None


CACHE_DIR = _cache_dir()
_compile = numba.njit(cache=CACHE_DIR is not None, error_model="numpy", nogil=True)
_announced = False


def announce_compilation(kernel: str) -> None:
    """Say on stderr, once per process, that the kernels are about to be compiled if the cache holds no compilation
    of ``kernel`` (``module.function``) yet: a first use after an install or an edit stalls for some seconds."""
    global _announced
    if not _announced and (CACHE_DIR is None or not any(CACHE_DIR.rglob(f"{kernel}-*.nbi"))):
        where = f"once: about 10 s; cached in {CACHE_DIR}" if CACHE_DIR else "about 10 s; no writable cache folder"
        print(f"sb3-mimic: compiling the simulation kernels for this machine ({where})", file=sys.stderr, flush=True)
    _announced = True


def jit(function):
    """``function`` compiled by numba (on first call), cached in :data:`CACHE_DIR`."""
    if CACHE_DIR is None:
        return _compile(function)
    saved = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = str(CACHE_DIR)  # read once, when the dispatcher picks its cache folder
    try:
        return _compile(function)
    finally:
        numba.config.CACHE_DIR = saved


def flat_rows(arrays, trailing: tuple[int, ...]) -> tuple[tuple[int, ...], list[np.ndarray]]:
    """Broadcast the leading axes of ``arrays`` (array ``k`` has ``trailing[k]`` trailing axes that are its own) and
    flatten them: ``(leading shape, [contiguous float64 arrays of shape (M, *trailing shape)])`` for a kernel that
    loops over rows."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    lead = np.broadcast_shapes(*(a.shape[: a.ndim - t] for a, t in zip(arrays, trailing, strict=True)))
    rows = []
    for a, t in zip(arrays, trailing, strict=True):
        tail = a.shape[a.ndim - t :]
        rows.append(np.ascontiguousarray(np.broadcast_to(a, lead + tail)).reshape(-1, *tail))
    return lead, rows
