"""Import guard for the ``imitation`` library, which the project installs separately with ``--no-deps``."""

from __future__ import annotations

_HINT = (
    "sb3-mimic needs the 'imitation' library, installed without its dependencies (its pins would downgrade "
    "Stable-Baselines3 and Gymnasium): run `pip install --no-deps imitation==1.0.1`, or `bash scripts/setup_env.sh` "
    "from the repository, which does it for you."
)


def require_imitation() -> None:
    """Raise an ImportError with the install command if ``imitation`` is missing."""
    try:
        import imitation  # noqa: F401
    except ImportError as err:
        raise ImportError(_HINT) from err


require_imitation()
