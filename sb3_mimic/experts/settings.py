"""The MPC expert's settings as data: a frozen, validating record (light to import: the command line reads it)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from sb3_mimic.motion import MotionClip

#: Expert names accepted by :func:`sb3_mimic.experts.make_expert` (and the command line's ``--expert``).
EXPERTS = ("pd", "mpc")


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class MPCSettings:
    """The settings of :class:`MPCExpert`, validated on construction.

    ``MPCSettings.for_clip(clip)`` gives a clip's settings: these defaults, updated by the ``"mpc"`` entry of its
    catalogue entry (clips that need a stronger planner than walk, e.g. run); :meth:`replace` applies the caller's
    overrides on top.  The ``help`` of each field is what the command line's ``--mpc_<name>`` prints.
    """

    horizon: int = _setting(15, "planning horizon, control steps")
    samples: int = _setting(16, "rollouts per planning iteration (the current plan is always one of them)")
    iterations: int = _setting(1, "MPPI iterations per control step")
    noise: float = _setting(0.1, "standard deviation of the plan perturbations, rad of PD target")
    knots: int = _setting(4, "perturbations are drawn at this many knots over the horizon and interpolated")
    temperature: float = _setting(0.1, "MPPI temperature, as a fraction of the spread of the sampled costs")
    fall_penalty: float = _setting(3.0, "cost per planned step after a fall")
    reanchor_heading: bool = _setting(
        True,
        "also turn the planner's reference to the character's heading (its root position is always moved to the "
        "character's), so that it tracks the clip's motion without chasing a heading error that accumulates over "
        "the cycles",
    )
    decay: float = _setting(
        0.95, "the warm-started plan is multiplied by this each step, so its offsets do not random-walk away from "
        "the reference",
    )
    stateless: bool = _setting(
        False,
        "plan every step from the plain reference with perturbations drawn once from the seed, so that the label "
        "is a function of the physics state and clip time alone (what DAgger assumes of an expert); needs "
        "iterations >= 2",
    )
    ensemble: int = _setting(
        1, "with stateless: label with the mean of this many stateless plans, member k seeded seed + k (a smoother "
        "function of the state, at this many times the cost)",
    )

    def __post_init__(self) -> None:
        for name, low in (("horizon", 2), ("samples", 2), ("iterations", 1), ("knots", 2), ("ensemble", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < low:
                raise ValueError(f"MPC setting {name} must be a whole number >= {low}, got {value!r}")
        for name in ("noise", "temperature", "fall_penalty", "decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"MPC setting {name} must be a number, got {value!r}")
        if not (self.noise > 0 and self.temperature > 0 and self.fall_penalty >= 0):
            raise ValueError(
                f"MPC settings noise and temperature must be positive and fall_penalty not negative, got noise "
                f"{self.noise!r}, temperature {self.temperature!r}, fall_penalty {self.fall_penalty!r}"
            )
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"MPC setting decay must be in (0, 1], got {self.decay!r}")
        for name in ("stateless", "reanchor_heading"):
            if getattr(self, name) not in (True, False):
                raise ValueError(f"MPC setting {name} must be True or False, got {getattr(self, name)!r}")
        if self.ensemble > 1 and not self.stateless:
            raise ValueError(
                f"ensemble={self.ensemble} averages stateless plans: also pass stateless=True (--mpc_stateless), or leave "
                "ensemble at 1"
            )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The setting names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def for_clip(cls, clip: MotionClip) -> MPCSettings:
        """The defaults updated by the clip's catalogue entry (``clip.info.mpc``)."""
        overrides = dict(clip.info.mpc)
        unknown = sorted(set(overrides) - set(cls.names()))
        if unknown:
            raise ValueError(
                f"the catalogue's 'mpc' entry for clip {clip.name!r} has unknown settings {unknown}; "
                f"allowed: {sorted(cls.names())}"
            )
        return cls(**overrides)

    def replace(self, **overrides: Any) -> MPCSettings:
        """A copy with the given settings changed; ``None`` values leave a setting as it is."""
        unknown = sorted(set(overrides) - set(self.names()))
        if unknown:
            raise ValueError(f"unknown MPC settings {unknown}; allowed: {sorted(self.names())}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)
