"""Experts that label states with actions: the PD expert (mocap tracking) and the MPC expert (which balances).

Both are ``imitation.policies.base.NonTrainablePolicy`` subclasses, so they work as SB3 policies, with
``imitation``'s rollout tools and as DAgger's expert.  :func:`make_expert` is the one place that maps an
expert's name to its class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sb3_mimic.experts.settings import EXPERTS, MPCSettings

if TYPE_CHECKING:
    from sb3_mimic.experts.mpc import MPCExpert
    from sb3_mimic.experts.pd import JointDecoder, PDExpert

_LAZY = {"MPCExpert": "sb3_mimic.experts.mpc", "PDExpert": "sb3_mimic.experts.pd", "JointDecoder": "sb3_mimic.experts.pd"}


def __getattr__(name: str):
    """The experts themselves import torch and imitation: only when asked for (``--help`` stays fast)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: The arguments :func:`make_expert` passes to each expert (the MPC also takes every :class:`MPCSettings` name).
_ARGUMENTS: dict[str, tuple[str, ...]] = {"pd": ("lookahead", "kp", "kd"), "mpc": ("settings", "seed", "nthread")}


def make_expert(name: str, env, **settings: Any) -> PDExpert | MPCExpert:
    """The expert called ``name`` for ``env`` (a :class:`~sb3_mimic.envs.MimicHumanoidEnv`, possibly wrapped, or
    a ``DummyVecEnv`` of them).

    ``settings`` may hold every expert's arguments: each expert takes its own and leaves the others', so a caller
    passes them all and lets ``name`` choose (``make_expert(args.expert, env, lookahead=..., seed=..., **mpc)``).

    :param name: ``"pd"`` or ``"mpc"``
    :param settings: for ``"pd"`` the arguments of :class:`PDExpert` (``lookahead``, ``kp``, ``kd``); for ``"mpc"``
        ``seed``, ``nthread``, ``settings`` (an :class:`MPCSettings`) and individual MPC settings (``horizon=20``,
        ...; ``None`` values keep the clip's)
    :raises TypeError: an argument that no expert takes
    """
    if name not in EXPERTS:
        raise ValueError(f"unknown expert {name!r}; choose one of {', '.join(EXPERTS)}")
    own = {"pd": _ARGUMENTS["pd"], "mpc": (*_ARGUMENTS["mpc"], *MPCSettings.names())}
    unknown = sorted(set(settings).difference(*own.values()))
    if unknown:
        raise TypeError(
            f"make_expert() got {', '.join(map(repr, unknown))}, which no expert takes; the PD expert takes "
            f"{', '.join(own['pd'])}, the MPC expert {', '.join(_ARGUMENTS['mpc'])} and MPC settings "
            f"({', '.join(MPCSettings.names())})"
        )
    mine = {key: value for key, value in settings.items() if key in own[name]}
    if name == "pd":
        from sb3_mimic.experts.pd import PDExpert

        return PDExpert.for_env(env, **mine)
    from sb3_mimic.experts.mpc import MPCExpert

    return MPCExpert(env, **mine)


__all__ = ["EXPERTS", "JointDecoder", "MPCExpert", "MPCSettings", "PDExpert", "make_expert"]
