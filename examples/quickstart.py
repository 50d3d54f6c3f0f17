"""Quick start with the Python API: the env, the PD expert, a small SFT run, the saved policy evaluated.

    python examples/quickstart.py            # about 2 minutes on 2 cores (SFT with the guide's defaults on walk)
    python examples/quickstart.py --tiny     # a few seconds: the test suite's budget (also SB3_MIMIC_EXAMPLES_TINY=1)

Writes ``OUT/walk_sft.zip`` (an ordinary SB3 TRPO zip, ready for ``sb3-mimic finetune`` or rl-zoo) and
``OUT/summary.json`` with both evaluations (``OUT`` is ``--out``, default ``quickstart_out``).  Neither policy
walks for long: plain PD tracking of a clip does not keep its balance, and the clone copies it (see the README's
benchmarks).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import gymnasium as gym

import sb3_mimic  # noqa: F401  (registers the env ids)
from sb3_mimic.evaluation import EvalResult, evaluate, policy_actor
from sb3_mimic.experts import make_expert
from sb3_mimic.policies import load_policy, read_metadata
from sb3_mimic.sft import SFTConfig, run_sft

#: ``SFTConfig`` overrides of the two budgets (the full one keeps the guide's defaults: 100 epochs, 20000 samples).
BUDGETS = {
    "tiny": {"epochs": 2, "n_samples": 300, "n_rollouts": 3},
    "full": {},
}


def tiny_requested(flag: bool) -> bool:
    """``--tiny`` or the environment variable ``SB3_MIMIC_EXAMPLES_TINY`` set (to anything but 0)."""
    return flag or os.environ.get("SB3_MIMIC_EXAMPLES_TINY", "0") not in ("", "0")


def summary(result: EvalResult) -> str:
    return (
        f"normalised return {result.normalized_return:.3f} +/- {result.std_normalized_return:.3f}, "
        f"time to fall {result.mean_survival_s:.2f} +/- {result.std_survival_s:.2f} s, "
        f"MPJPE {result.mpjpe_mm:.0f} mm ({result.episodes} episodes)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a budget of seconds (as in the test suite)")
    parser.add_argument("--out", default="quickstart_out", help="folder for the policy and the summary")
    args = parser.parse_args(argv)
    tiny = tiny_requested(args.tiny)
    episodes = 2 if tiny else 10
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. the env: a reference-state start, and one step towards the next reference pose
    env = gym.make("MimicHumanoidWalk-v0")
    obs, info = env.reset(seed=0)
    u = env.unwrapped
    print(f"{env.spec.id}: clip {u.clip.name!r} ({u.clip.duration:.2f} s, looping: {u.clip.loop}), "
          f"observation {obs.shape}, action {env.action_space.shape}, started at t = {info['time']:.2f} s")
    target = u.pd_target_action(u.clip.sample(u.time + u.dt)[0])  # the action that targets the next reference pose
    _, reward, _, _, info = env.step(target)
    print(f"one step: reward {reward:.3f} (pose term {info['reward_pose']:.3f}), MPJPE {1000 * info['mpjpe']:.1f} mm")

    # 2. the PD expert (it labels the SFT demonstrations), evaluated from seeded reference-state starts
    expert = make_expert("pd", env)
    pd = evaluate(policy_actor(expert), env, episodes=episodes, seed=0)
    print(f"PD expert: {summary(pd)}")

    # 3. SFT: demonstrations from the PD expert, behaviour cloning into a TRPO policy, saved as a zip
    config = SFTConfig(mocap="walk", save_path=str(out / "walk_sft.zip"), no_eval=True,
                       **BUDGETS["tiny" if tiny else "full"])
    run = run_sft(config, progress_bar=not tiny)

    # 4. load the policy back and evaluate it on the same starts
    model = load_policy(run.save_path, env)
    meta = read_metadata(run.save_path)
    sft = evaluate(policy_actor(model), env, episodes=episodes, seed=0)
    print(f"SFT policy ({meta.trained_by} on {meta.clip!r}, {run.save_path}): {summary(sft)}")
    env.close()

    path = out / "summary.json"
    path.write_text(json.dumps({"pd_expert": pd.to_dict(), "sft_policy": sft.to_dict(),
                                "policy": str(run.save_path), "tiny": tiny}, indent=2) + "\n")
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
