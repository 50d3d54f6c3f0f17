"""The decorator of the compiled kernels: numba's ``njit`` with its compilations cached on disk (next to the source,
or in numba's per-user cache where the package folder is read-only), IEEE arithmetic (no ``fastmath``), numpy's
error model (a division by zero gives inf or NaN, as in numpy, not an exception) and the GIL released while a
kernel runs.

The per-step arithmetic of the simulation (observations, reward errors, MPJPE, falls) runs in such kernels: one
call per step for the whole batch instead of some two hundred numpy calls on small arrays, whose fixed cost per
call was as large as the physics on these machines.  Each kernel is the one implementation of what it computes;
the numpy-facing functions of :mod:`sb3_mimic.reward` and :mod:`sb3_mimic.envs.batched` are thin wrappers that
flatten leading axes and call it.
"""

from __future__ import annotations

import numba
import numpy as np

jit = numba.njit(cache=True, error_model="numpy", nogil=True)


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
