"""Small helpers shared by the training modules: atomic JSON files, writable paths and the number of usable cores."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON through a temporary file and a rename, so a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def available_cores() -> int:
    """CPU cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def check_writable(path: str | Path) -> None:
    """Raise ValueError unless a file can be written at ``path`` (tried with a temporary file, then removed)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"save path {path} is a directory; give a file name such as {path / 'policy.zip'}")
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".sb3_mimic_write_test_"):
            pass
    except OSError as err:
        raise ValueError(f"cannot write {path} (save path): {parent} is not a writable folder ({err.strerror})") from err
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"cannot overwrite {path}: permission denied")
