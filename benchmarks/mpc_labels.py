"""What an MPC label is made of: the reference, the plan the expert carries, and sampling noise.

Why cloning the MPC expert is hard: its action at a state depends on the plan it carried from the previous
steps, which the policy never sees. This script measures how much, on one clip (default walk) with the clip's
MPC settings:

1. The MPC acts alone from ``--starts`` seeded reference-state starts (``reset(seed=seed + i)``) for
   ``--steps`` control steps; every ``--every`` steps, before acting, it is asked ``--queries`` times what it
   would do from the same state without committing the answer (``plan(commit=False)``): with its carried plan
   (``warm=True``) and from the plain reference (``warm=False``, as if queried on an isolated state).
2. Reported, in radians of PD target (RMS over the 28 action dimensions and the query points):

   - **offset**: the committed label minus the PD expert's label (the reference pose one step ahead): what the
     MPC adds to plain tracking;
   - **sampling**: the spread of the warm answers around their mean: label noise no policy can fit;
   - **carried plan**: the mean warm answer minus the mean cold answer: the part of the label that comes from
     the plan carried over from earlier steps rather than from the state;
   - **cold offset**: the mean cold answer minus the PD label: what the planner adds from the state alone
     with one planning call.

The exit status is 0 whatever the figures. Run from the repository root::

    .venv/bin/python benchmarks/mpc_labels.py                 # about 2-3 minutes on 2 cores
    .venv/bin/python benchmarks/mpc_labels.py --mpc_decay 0.85 --out /tmp/labels.md
"""

from __future__ import annotations

import os

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"  # headless; nothing is rendered, but the envs import the GL backend

import argparse
import datetime
import json
import math
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout, installed or not
from sb3_mimic.envs.actions import ACTION_SCALE
from sb3_mimic.cli import add_mpc_options, mpc_overrides
from sb3_mimic.experts import make_expert
from sb3_mimic.registration import env_spec_for

from _machine import machine

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = ("offset", "sampling", "carried plan", "cold offset")


def rad_rms(squares: list[float]) -> float:
    """RMS in radians of PD target from mean squares in normalised action units."""
    return ACTION_SCALE * math.sqrt(float(np.mean(squares)))


def measure(args) -> dict:
    env_id, env_kwargs = env_spec_for(args.clip)
    env = gym.make(env_id, **env_kwargs)
    pd = make_expert("pd", env, lookahead=1)
    mpc = make_expert("mpc", env, seed=args.seed, **mpc_overrides(args))
    squares = {part: [] for part in PARTS}
    survived, points = [], 0
    start = time.perf_counter()
    for episode in range(args.starts):
        obs, _ = env.reset(seed=args.seed + episode)
        steps = 0
        for step in range(args.steps):
            query = step > 0 and step % args.every == 0
            if query:
                pd_label = pd.predict(obs, deterministic=True)[0]
                warm = np.stack([mpc.plan(commit=False) for _ in range(args.queries)])
                cold = np.stack([mpc.plan(warm=False, commit=False) for _ in range(args.queries)])
                squares["sampling"].append(float(warm.var(axis=0).mean()))
                squares["carried plan"].append(float(((warm.mean(0) - cold.mean(0)) ** 2).mean()))
                squares["cold offset"].append(float(((cold.mean(0) - pd_label) ** 2).mean()))
                points += 1
            action = mpc.plan()
            if query:
                squares["offset"].append(float(((action - pd_label) ** 2).mean()))
            obs, _, terminated, truncated, _ = env.step(action)
            steps += 1
            if terminated or truncated:
                break
        survived.append(steps)
    mpc.close()
    env.close()
    figures = {part: rad_rms(values) for part, values in squares.items()}
    figures["carried plan to offset power ratio"] = float(np.mean(squares["carried plan"]) / np.mean(squares["offset"]))
    return {"figures": figures, "query_points": points, "steps_survived": survived, "settings": mpc.settings.to_dict(),
            "wall_s": time.perf_counter() - start}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", default="walk")
    p.add_argument("--starts", type=int, default=10, help="episodes (default 10)")
    p.add_argument("--steps", type=int, default=150, help="control steps per episode (default 150 = 5 s)")
    p.add_argument("--every", type=int, default=15, help="query every this many steps (default 15)")
    p.add_argument("--queries", type=int, default=8, help="warm and cold answers per query point (default 8)")
    add_mpc_options(p)  # sb3-mimic's --mpc_* options (e.g. --mpc_decay 0.85)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS / "mpc_labels.md", help="Markdown report")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = p.parse_args(argv)
    if min(args.starts, args.steps, args.every, args.queries) < 1 or args.queries < 2:
        p.error("--starts, --steps and --every must be at least 1, --queries at least 2")
    if args.steps <= args.every:
        p.error(f"--steps ({args.steps}) must exceed --every ({args.every}): the first query comes after --every steps")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    now = datetime.datetime.now().astimezone()
    result = measure(args)
    f = result["figures"]
    lines = [
        f"# What an MPC label is made of ({now:%Y-%m-%d %H:%M %Z})", "",
        f"Machine: {machine()}. Clip {args.clip}, {args.starts} starts "
        f"(seed {args.seed}) x {args.steps} steps, {result['query_points']} query points with {args.queries} warm "
        f"and {args.queries} cold answers each; {result['wall_s']:.0f} s.",
        "MPC settings: " + ", ".join(f"{k} {v}" for k, v in result["settings"].items()) + ".",
        f"Steps the MPC stayed up per episode: {result['steps_survived']}.", "",
        "| part of the label | RMS (rad of PD target) |", "|---|---:|",
        *[f"| {part} | {f[part]:.4f} |" for part in PARTS], "",
        f"The carried plan's mean square is {100 * f['carried plan to offset power ratio']:.0f} % of the offset's "
        "(a ratio of mean squares; the parts are not independent, so it is not an exact share): that part comes "
        "from the episode's history, which a policy sees only as far as the current state reflects it.",
    ]
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps({"date": now.isoformat(timespec="seconds"),
                                         "args": {k: str(v) for k, v in vars(args).items()}, **result}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
