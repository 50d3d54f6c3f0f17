"""Warm-start rl-baselines3-zoo's TRPO from an SFT policy, then evaluate both with sb3-mimic.

    python examples/zoo_warm_start.py                  # SFT (about 2 min), then 20k steps of rl-zoo TRPO
    python examples/zoo_warm_start.py --sft walk_sft.zip --timesteps 200000
    python examples/zoo_warm_start.py --tiny           # the test suite's budget (also SB3_MIMIC_EXAMPLES_TINY=1)

The SFT zip is an ordinary SB3 TRPO model with the architecture and exploration std of the zoo configuration
(``zoo_configs/trpo.yml``: ``use_sde`` off, no normalisation), so rl-zoo's ``-i`` continues it unchanged.
The command run is the README's::

    python -m rl_zoo3.train --algo trpo --env MimicHumanoidWalk-v0 --gym-packages sb3_mimic \\
        --conf-file zoo_configs/trpo.yml -i walk_sft.zip

plus a step budget, the output folder and ``--device cpu``; ``--tiny`` also shrinks the rollouts
(``--hyperparams n_steps:128 n_envs:1 batch_size:64``).  rl-zoo's model lands in
``OUT/logs/trpo/MimicHumanoidWalk-v0_<k>/MimicHumanoidWalk-v0.zip`` (``OUT`` is ``--out``, default
``zoo_out``); ``OUT/summary.json`` holds both evaluations and the model's path.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym

import sb3_mimic  # noqa: F401  (registers the env ids)
from sb3_mimic._resources import data_path
from sb3_mimic.evaluation import evaluate, policy_actor
from sb3_mimic.policies import load_policy
from sb3_mimic.sft import SFTConfig, run_sft

ENV_ID = "MimicHumanoidWalk-v0"
#: SFT budgets: the zoo config's architecture is SFT's default (2 x 64), so only the data and epochs shrink.
SFT_BUDGETS = {"tiny": {"epochs": 2, "n_samples": 300, "n_rollouts": 3}, "full": {}}
TINY_HYPERPARAMETERS = ("n_steps:128", "n_envs:1", "batch_size:64")


def tiny_requested(flag: bool) -> bool:
    """``--tiny`` or the environment variable ``SB3_MIMIC_EXAMPLES_TINY`` set (to anything but 0)."""
    return flag or os.environ.get("SB3_MIMIC_EXAMPLES_TINY", "0") not in ("", "0")


def zoo_command(sft_zip: Path, logs: Path, timesteps: int, tiny: bool) -> list[str]:
    """The ``rl_zoo3.train`` command line that continues ``sft_zip``."""
    command = [
        sys.executable, "-m", "rl_zoo3.train", "--algo", "trpo", "--env", ENV_ID, "--gym-packages", "sb3_mimic",
        "--conf-file", str(data_path("zoo_configs", "trpo.yml")), "-i", str(sft_zip), "-n", str(timesteps),
        "-f", str(logs), "--eval-freq", "-1", "--device", "cpu", "--seed", "0",
    ]
    if tiny:
        command += ["--num-threads", "1", "--hyperparams", *TINY_HYPERPARAMETERS]
    return command


def newest_zoo_model(logs: Path) -> Path:
    """rl-zoo's final model of its latest experiment under ``logs`` (``trpo/<env id>_<k>/<env id>.zip``)."""
    runs = sorted((logs / "trpo").glob(f"{ENV_ID}_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    if not runs or not (runs[-1] / f"{ENV_ID}.zip").is_file():
        raise FileNotFoundError(f"rl-zoo wrote no model under {logs / 'trpo'}")
    return runs[-1] / f"{ENV_ID}.zip"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a budget of seconds (as in the test suite)")
    parser.add_argument("--out", default="zoo_out", help="folder for the SFT policy, rl-zoo's logs and the summary")
    parser.add_argument("--sft", help="an existing SFT policy of walk (default: train one first)")
    parser.add_argument("--timesteps", type=int, help="rl-zoo env steps (default 20000; 128 with --tiny)")
    args = parser.parse_args(argv)
    tiny = tiny_requested(args.tiny)
    if args.timesteps is not None and args.timesteps < 1:
        parser.error(f"--timesteps must be at least 1, got {args.timesteps}")
    timesteps = args.timesteps or (128 if tiny else 20_000)
    episodes = 2 if tiny else 10
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        import rl_zoo3  # noqa: F401
    except ImportError:
        print("rl-baselines3-zoo is not installed: pip install rl_zoo3", file=sys.stderr)
        return 1

    # 1. the SFT policy (the warm start)
    if args.sft:
        sft_zip = Path(args.sft).resolve()
    else:
        config = SFTConfig(mocap="walk", save_path=str(out / "walk_sft.zip"), no_eval=True,
                           **SFT_BUDGETS["tiny" if tiny else "full"])
        sft_zip = run_sft(config, progress_bar=not tiny).save_path.resolve()

    # 2. rl-zoo continues it
    command = zoo_command(sft_zip, out / "logs", timesteps, tiny)
    print("Running:", " ".join(command), flush=True)
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    zoo_zip = newest_zoo_model(out / "logs")

    # 3. both evaluated on the same starts (rl-zoo's zip keeps the SFT policy's sb3-mimic metadata)
    from sb3_contrib import TRPO

    env = gym.make(ENV_ID)
    figures = {}
    for name, model in (("sft", load_policy(sft_zip, env)), ("zoo", TRPO.load(zoo_zip, device="cpu"))):
        result = evaluate(policy_actor(model), env, episodes=episodes, seed=0)
        figures[name] = result.to_dict()
        print(f"{name}: {model.num_timesteps} RL steps, normalised return {result.normalized_return:.3f}, "
              f"time to fall {result.mean_survival_s:.2f} s, MPJPE {result.mpjpe_mm:.0f} mm ({episodes} episodes)")
    env.close()
    path = out / "summary.json"
    path.write_text(json.dumps({"sft_policy": str(sft_zip), "zoo_model": str(zoo_zip), "timesteps": timesteps,
                                "evaluations": figures, "tiny": tiny}, indent=2) + "\n")
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
