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


def make_expert(name: str, env, **settings: Any) -> PDExpert | MPCExpert:
    """The expert called ``name`` for ``env`` (a :class:`~sb3_mimic.envs.MimicHumanoidEnv`, possibly wrapped, or
    a ``DummyVecEnv`` of them).

    :param name: ``"pd"`` or ``"mpc"``
    :param settings: the expert's own arguments: for ``"pd"`` those of :class:`PDExpert` (``lookahead``, ``kp``,
        ``kd``); for ``"mpc"`` ``seed``, ``nthread``, ``settings`` (an :class:`MPCSettings`) and individual MPC
        settings (``horizon=20``, ...; ``None`` values keep the clip's)
    """
    if name == "pd":
        from sb3_mimic.experts.pd import PDExpert

        return PDExpert.for_env(env, **settings)
    if name == "mpc":
        from sb3_mimic.experts.mpc import MPCExpert

        return MPCExpert(env, **settings)
    raise ValueError(f"unknown expert {name!r}; choose one of {', '.join(EXPERTS)}")


__all__ = ["EXPERTS", "JointDecoder", "MPCExpert", "MPCSettings", "PDExpert", "make_expert"]
