"""Experts that label states with actions: the PD expert (mocap tracking) and the MPC expert (which balances).

Both are ``imitation.policies.base.NonTrainablePolicy`` subclasses, so they work as SB3 policies, with
``imitation``'s rollout tools and as DAgger's expert.  :func:`make_expert` is the one place that maps an
expert's name to its class.
"""

from __future__ import annotations

from typing import Any

from sb3_mimic.experts.mpc import MPCExpert, MPCSettings
from sb3_mimic.experts.pd import JointDecoder, PDExpert

#: Expert names accepted by :func:`make_expert` (and the command line's ``--expert``).
EXPERTS = ("pd", "mpc")


def make_expert(name: str, env, **settings: Any) -> PDExpert | MPCExpert:
    """The expert called ``name`` for ``env`` (a :class:`~sb3_mimic.envs.MimicHumanoidEnv`, possibly wrapped, or
    a ``DummyVecEnv`` of them).

    :param name: ``"pd"`` or ``"mpc"``
    :param settings: the expert's own arguments: for ``"pd"`` those of :class:`PDExpert` (``lookahead``, ``kp``,
        ``kd``); for ``"mpc"`` ``seed``, ``nthread``, ``settings`` (an :class:`MPCSettings`) and individual MPC
        settings (``horizon=20``, ...; ``None`` values keep the clip's)
    """
    if name == "pd":
        return PDExpert.for_env(env, **settings)
    if name == "mpc":
        return MPCExpert(env, **settings)
    raise ValueError(f"unknown expert {name!r}; choose one of {', '.join(EXPERTS)}")


__all__ = ["EXPERTS", "JointDecoder", "MPCExpert", "MPCSettings", "PDExpert", "make_expert"]
