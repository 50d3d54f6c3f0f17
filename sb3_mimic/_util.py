"""Small helpers shared by the training modules: atomic JSON files, scratch files and folders that a killed process
leaves for the next one to clean, writable paths and the number of usable cores."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON through a temporary file and a rename, so a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (``True`` where that cannot be asked safely: never remove a live one's)."""
    if os.name != "posix":  # Windows' os.kill(pid, 0) would send the process a Ctrl-C
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process, or no permission to ask: it exists
        return True
    return True


def remove_stale(folder: Path, name_pattern: str) -> list[Path]:
    """Remove the files and folders in ``folder`` whose name matches ``name_pattern`` (a regular expression whose
    first group is the process id that made them) and whose process is gone: what a SIGKILL left behind.

    :returns: the paths removed
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = re.fullmatch(name_pattern, entry.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):  # someone else's, or removed meanwhile
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
    return removed


def temp_sibling(path: Path) -> Path:
    """The temporary file beside ``path`` that this process writes before renaming it onto ``path``:
    ``.{stem}.{pid}.tmp{suffix}`` (the suffix kept for writers that pick the format from it).  The ones of processes
    that are gone (killed before their rename) are removed first; ``path``'s folder must exist."""
    remove_stale(path.parent, rf"\.{re.escape(path.stem)}\.(\d+)\.tmp{re.escape(path.suffix)}")
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


@contextlib.contextmanager
def scratch_folder(prefix: str, parent: str | Path | None = None) -> Iterator[Path]:
    """A scratch folder ``{parent}/{prefix}{pid}_XXXX`` (``parent``: the system's temporary folder by default),
    removed on exit.  A SIGKILL skips the exit: the folders of that prefix left by processes that are gone are
    removed when the next one is made."""
    parent = Path(tempfile.gettempdir() if parent is None else parent)
    remove_stale(parent, rf"{re.escape(prefix)}(\d+)_.*")
    with tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}_", dir=parent) as tmp:
        yield Path(tmp)


def available_cores() -> int:
    """CPU cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def check_writable(path: str | Path) -> None:
    """Raise ValueError unless a file can be written at ``path`` (tried with a temporary file, then removed)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"save path {path} is a directory; give a file name such as {path / 'policy.zip'}")
    parent, missing = path.absolute().parent, None
    while not parent.exists():  # the folders a writer would create (mkdir parents=True), outermost last
        parent, missing = parent.parent, parent
    if not parent.is_dir():
        raise ValueError(f"cannot write {path}: {parent} is a file, not a folder; choose another path")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".sb3_mimic_write_test_"):
            pass
    except OSError as err:
        if missing is not None:
            raise ValueError(
                f"cannot write {path}: the folder {missing} does not exist and cannot be created, {parent} does not "
                f"take new files ({err.strerror}); create it yourself, or choose a path in a folder you can write to"
            ) from err
        raise ValueError(
            f"cannot write {path}: {parent} is not a writable folder ({err.strerror}); choose a path in a folder you "
            "can write to"
        ) from err
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"cannot overwrite {path}: permission denied")
