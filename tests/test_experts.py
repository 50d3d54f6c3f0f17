"""``sb3_mimic.experts``: the expert factory, the one map from an expert's name to the expert."""

from __future__ import annotations

import numpy as np
import pytest

import sb3_mimic  # noqa: F401  (registers the env ids)
from sb3_mimic.experts import PDExpert


def test_make_expert_is_the_one_map_from_name_to_expert(walk):
    from sb3_mimic.cli import build_parser
    from sb3_mimic.experts import EXPERTS, MPCExpert, make_expert

    for command in ("eval", "video", "dagger"):  # the command line's --expert choices
        args = build_parser().parse_args([command, "--expert", "mpc", *(["--mocap", "walk"] if command != "dagger" else [])])
        assert args.expert == "mpc"
    assert EXPERTS == ("pd", "mpc")
    pd = make_expert("pd", walk, lookahead=2)
    assert isinstance(pd, PDExpert) and pd.lookahead == 2
    mpc = make_expert("mpc", walk, horizon=4, samples=3, nthread=1)
    assert isinstance(mpc, MPCExpert) and (mpc.horizon, mpc.samples) == (4, 3)
    mpc.close()
    with pytest.raises(ValueError, match="unknown expert 'ilqr'; choose one of pd, mpc"):
        make_expert("ilqr", walk)



def test_make_expert_takes_every_experts_arguments_and_gives_each_its_own(walk):
    """Callers pass the union (``make_expert(args.expert, env, lookahead=..., seed=..., **mpc)``), never branch."""
    from sb3_mimic.experts import MPCSettings, make_expert

    union = dict(lookahead=2, kd=0.5, seed=3, nthread=1, horizon=4, samples=3)
    pd = make_expert("pd", walk, **union)
    assert isinstance(pd, PDExpert) and (pd.lookahead, pd.kd) == (2, 0.5)
    obs, _ = walk.reset(seed=0)
    np.testing.assert_array_equal(pd.label(obs), PDExpert.for_env(walk, lookahead=2, kd=0.5).label(obs))
    mpc = make_expert("mpc", walk, **union)
    assert mpc.settings == MPCSettings(horizon=4, samples=3)  # walk has no catalogue overrides: the defaults
    mpc.close()
    mpc = make_expert("mpc", walk, lookahead=2, settings=MPCSettings(horizon=5, samples=2), nthread=1)
    assert (mpc.horizon, mpc.samples) == (5, 2)
    mpc.close()
    with pytest.raises(TypeError, match=r"got 'horizn', which no expert takes; the PD expert takes lookahead, kp, kd"):
        make_expert("pd", walk, horizn=4)

