"""Where the data that ships with sb3-mimic lives: character models, the clip catalogue, rl-zoo configs.

In a wheel these folders are packaged under ``sb3_mimic/_data/``; in a source checkout (or an editable
install) they are the top-level folders ``envs/``, ``motions/`` and ``zoo_configs/`` of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_FOLDERS = ("envs", "motions", "zoo_configs")


def data_path(folder: str, *parts: str) -> Path:
    """Return the path of ``folder/parts...`` among the shipped data folders.

    :param folder: one of ``envs``, ``motions``, ``zoo_configs``
    :param parts: path components inside that folder
    :return: an existing path
    """
    if folder not in _FOLDERS:
        raise ValueError(f"unknown data folder {folder!r}; expected one of {_FOLDERS}")
    for base in (_PACKAGE_DIR / "_data" / folder, _PACKAGE_DIR.parent / folder):
        if base.is_dir():
            path = base.joinpath(*parts)
            if path.exists():
                return path
    raise FileNotFoundError(
        f"sb3-mimic data file {Path(folder, *parts)} is missing from the installation "
        f"(looked in {_PACKAGE_DIR / '_data'} and {_PACKAGE_DIR.parent}); reinstall the package"
    )


#: ``pretrained:NAME`` names a policy that ships inside the package (``sb3_mimic/pretrained/NAME.zip``, with its
#: evaluation in ``NAME.json``).
PRETRAINED_PREFIX = "pretrained:"
PRETRAINED_DIR = _PACKAGE_DIR / "pretrained"


def pretrained_names() -> list[str]:
    """Names of the policies that ship with sb3-mimic (``pretrained:NAME``)."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.zip"))


def policy_file(path: str | Path) -> Path:
    """The file a policy argument names: a path as it is, or ``pretrained:NAME`` for a shipped policy
    (FileNotFoundError listing the shipped names if there is none by that name)."""
    text = str(path)
    if not text.startswith(PRETRAINED_PREFIX):
        return Path(path)
    file = PRETRAINED_DIR / f"{text[len(PRETRAINED_PREFIX):]}.zip"
    if not file.is_file():
        names = ", ".join(PRETRAINED_PREFIX + n for n in pretrained_names()) or "none"
        raise FileNotFoundError(f"no shipped policy {text!r}; the package ships: {names}")
    return file


def existing_policy_file(option: str, path: str | Path) -> Path:
    """:func:`policy_file` for a command-line ``option``'s value, checked to exist (ValueError naming both if not):
    light, so that a missing policy fails before torch is imported."""
    try:
        file = policy_file(path)
    except FileNotFoundError as err:
        raise ValueError(f"{option}: {err}") from err
    if not file.is_file():
        raise ValueError(f"{option} {path}: no such file (it does not exist)")
    return file
