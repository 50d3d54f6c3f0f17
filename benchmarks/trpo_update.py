"""Where a TRPO iteration's time goes: the env, SB3's rollout bookkeeping, and the update, ours against sb3-contrib's.

One model (``MimicTRPO``, the product's default network and TRPO defaults) trains one iteration on the batched
vector env (``--n_envs`` characters, 2 physics threads, ``--rollout`` env steps per iteration), then, for
``--rounds`` rounds:

1. **rollout**: one ``collect_rollouts`` of a full rollout, timed whole and inside the vector env's ``step_wait``
   (the env), the rest being SB3's per-step work (the policy call, the buffer, callbacks);
2. **update**: from one saved state (policy, optimiser, the rollout, numpy's seed), in alternating order, sb3-contrib's
   ``TRPO.train`` and ``GaussianTRPO.train`` (what ``MimicTRPO`` runs), each in full and with
   ``n_critic_updates=0`` (the natural-gradient step alone; the critic's share is the difference).

Torch runs on one thread. Figures are medians over the rounds; ratios are medians of per-round ratios. The update's
time does not depend on the env's speed, so the iteration's shares show how the learner's cost compares with the
env's on this machine today. The exit status is 0 whatever the figures.

Run from the repository root::

    .venv/bin/python benchmarks/trpo_update.py            # about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch as th
from sb3_contrib import TRPO
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import configure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout, installed or not
from sb3_mimic.configs import TRPO_DEFAULTS, RunConfig
from sb3_mimic.envs import MimicHumanoidVecEnv
from sb3_mimic.policies import policy_kwargs_for
from sb3_mimic.rl import MimicTRPO
from sb3_mimic.trpo import GaussianTRPO

from _machine import report_header

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", default="walk", help="clip of the vector env (default walk)")
    p.add_argument("--n_envs", type=int, default=32, help="characters (default 32)")
    p.add_argument("--rollout", type=int, default=4096, help="env steps per iteration (default 4096)")
    p.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    p.add_argument("--out", type=Path, default=RESULTS / "trpo_update.md", help="Markdown report")
    p.add_argument("--json", type=Path, default=RESULTS / "trpo_update.json", help="JSON record")
    args = p.parse_args(argv)
    if args.rollout % args.n_envs or args.rounds < 1:
        p.error("--rollout must be a multiple of --n_envs, and --rounds at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    th.set_num_threads(1)
    env = MimicHumanoidVecEnv(args.n_envs, args.clip, threads=2, seed=0)
    kwargs = {**TRPO_DEFAULTS, "n_steps": args.rollout // args.n_envs}
    model = MimicTRPO("MlpPolicy", env, seed=0, device="cpu", verbose=0,
                      policy_kwargs=policy_kwargs_for(RunConfig.hidden_size, RunConfig.num_layers), **kwargs)
    model.learn(args.rollout)
    model._setup_learn(args.rollout, None, reset_num_timesteps=False)
    model.set_logger(configure(None, []))
    callback = CallbackList([])
    callback.init_callback(model)
    in_env = [0.0]
    step_wait = env.step_wait

    def timed_step_wait():
        t = time.perf_counter()
        out = step_wait()
        in_env[0] += time.perf_counter() - t
        return out

    env.step_wait = timed_step_wait
    critic_updates = model.n_critic_updates
    updates = {"sb3-contrib": TRPO.train, "sb3-mimic": GaussianTRPO.train}
    rounds = []
    for r in range(args.rounds):
        in_env[0] = 0.0
        t = time.perf_counter()
        model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
        row = {"rollout": time.perf_counter() - t, "env": in_env[0]}
        row["rollout bookkeeping"] = row["rollout"] - row["env"]
        start = (copy.deepcopy(model.policy.state_dict()), copy.deepcopy(model.policy.optimizer.state_dict()),
                 copy.deepcopy(model.rollout_buffer))
        order = list(updates) if r % 2 == 0 else list(reversed(updates))
        for critic in (critic_updates, 0):
            for name in order:
                model.policy.load_state_dict(start[0])
                model.policy.optimizer.load_state_dict(copy.deepcopy(start[1]))
                model.rollout_buffer = copy.deepcopy(start[2])
                model.n_critic_updates = critic
                np.random.seed(r)
                t = time.perf_counter()
                updates[name](model)
                row[f"{name} update" + ("" if critic else ", actor only")] = time.perf_counter() - t
        model.n_critic_updates = critic_updates
        for name in updates:
            row[f"{name} critic"] = row[f"{name} update"] - row[f"{name} update, actor only"]
        rounds.append(row)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v:.3f} s" for k, v in row.items()), flush=True)
    env.close()

    names = list(rounds[0])
    figures = {name: statistics.median(row[name] for row in rounds) for name in names}

    def ratio(f):
        return statistics.median(f(row) for row in rounds)

    ratios = {
        "sb3-contrib update / sb3-mimic update": ratio(lambda x: x["sb3-contrib update"] / x["sb3-mimic update"]),
        "sb3-contrib natural-gradient step / sb3-mimic's": ratio(
            lambda x: x["sb3-contrib update, actor only"] / x["sb3-mimic update, actor only"]),
        "env share of an sb3-mimic iteration": ratio(lambda x: x["env"] / (x["rollout"] + x["sb3-mimic update"])),
        "env share of an sb3-contrib iteration": ratio(lambda x: x["env"] / (x["rollout"] + x["sb3-contrib update"])),
    }
    now = datetime.datetime.now().astimezone()
    lines = report_header(
        "Where a TRPO iteration's time goes", now,
        f"{args.clip}, {args.n_envs} characters on 2 physics threads, {args.rollout} env steps per iteration, "
        f"MimicTRPO with the product's default network and TRPO defaults (batch {kwargs['batch_size']}, "
        f"{critic_updates} critic passes), one torch thread, {args.rounds} rounds. Medians over the rounds; ratios "
        "are medians of per-round ratios.",
        "",
        "| part | seconds per iteration (median) | per round |", "|---|---:|---|",
    )
    lines += [f"| {name} | {figures[name]:.3f} | {', '.join(f'{row[name]:.3f}' for row in rounds)} |"
              for name in names]
    lines += ["", "| ratio | median |", "|---|---:|"] + [f"| {k} | {v:.2f} |" for k, v in ratios.items()]
    lines += ["", "The env's share of an iteration is the most a training run's steps/s can reach of the vector env's "
              "own (the TRPO training / vector env ratio of `env_throughput.py`)."]
    report = "\n".join(lines) + "\n"
    print("\n" + report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    record = {"when": now.isoformat(), "args": {k: str(v) for k, v in vars(args).items()}, "rounds": rounds,
              "figures": figures, "ratios": ratios}
    args.json.write_text(json.dumps(record, indent=1) + "\n")
    print(f"Wrote {args.out} and {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
