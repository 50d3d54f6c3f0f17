"""Env and training throughput: the single env, the batched vector env, the raw physics bound and peers.

What is measured, in one run, with uniformly random actions in [-1, 1] drawn before timing (episodes reset when
they end; the resets count in the time):

1. **single env**: ``gymnasium.make(ENV)`` (default ``MimicHumanoidWalk-v0``), one character.
2. **vector env**: ``sb3_mimic.envs.MimicHumanoidVecEnv(--n_envs)`` on 1 and on 2 physics threads, and with each
   of ``--more_n_envs`` characters on 2 threads.
3. **raw bound**: bare ``mujoco.mj_step(model, data, nstep=frame_skip)`` of the env's model for the same simulated
   time per step, from the env's reference states (recopied every 30 calls, so that the contact load stays like an
   episode's), in one thread, and in two threads each stepping its own ``MjData`` at once (MuJoCo releases the GIL).
4. **peers**: gymnasium's ``Humanoid-v5`` in ``gymnasium.vector.AsyncVectorEnv`` with 2 worker processes, and
   EnvPool's ``Humanoid-v4`` on 2 threads (if ``envpool`` imports; it is a peer, not a dependency). Their step is
   5 physics steps of another model: compare them in steps/s only as a rough reference.
5. **training**: TRPO and PPO (default network, one torch thread) ``learn`` steps/s on today's default path
   (``SubprocVecEnv``, 2 workers) and on the batched vector env (``--n_envs`` characters, 2 threads), with the same
   rollout size per iteration (``--rollout`` env steps: ``n_steps = rollout / n_envs``), after one warm-up
   iteration.

Subjects are interleaved in ``--rounds`` rounds of ``--seconds`` each; a figure is the median over the rounds and
a ratio the median of the per-round ratios, so that machine noise (single-thread speed moves by a third within a
minute here) touches every figure alike. PASS/FAIL lines show the batched-simulation issue's targets; the exit
status is 0 whatever the figures.

Run from the repository root::

    .venv/bin/python benchmarks/env_throughput.py                 # about 4 minutes on 2 cores
    .venv/bin/python benchmarks/env_throughput.py --rounds 2 --seconds 1 --no_training
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # numpy's BLAS on one thread: the threads here are the physics'
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout, installed or not
from sb3_mimic.envs import MimicHumanoidVecEnv  # noqa: E402

from _machine import report_header  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RECOPY_EVERY = 30
TARGET_OF_BOUND, TARGET_OVER_SINGLE = 0.8, 2.0
TARGET_TRAIN_OF_VEC, TARGET_TRAIN_OVER_SUBPROC = 0.5, 3.0


def timed_loop(step, seconds: float) -> float:
    """Calls ``step()`` (which returns the env steps it took) for ``seconds``; returns steps per second."""
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        steps += step()
    return steps / elapsed


def single_env(env_id: str, seconds: float, rng) -> float:
    env = gymnasium.make(env_id)
    env.reset(seed=0)
    actions = rng.uniform(-1, 1, (4096, 28)).astype(np.float32)
    k = [0]

    def step():
        _, _, terminated, truncated, _ = env.step(actions[k[0] % 4096])
        k[0] += 1
        if terminated or truncated:
            env.reset()
        return 1

    rate = timed_loop(step, seconds)
    env.close()
    return rate


def vector_env(clip: str, n: int, threads: int, seconds: float, rng) -> float:
    vec = MimicHumanoidVecEnv(n, clip, threads=threads, seed=0)
    vec.reset()
    actions = rng.uniform(-1, 1, (256, n, 28)).astype(np.float32)
    k = [0]

    def step():
        vec.step(actions[k[0] % 256])
        k[0] += 1
        return n

    rate = timed_loop(step, seconds)
    vec.close()
    return rate


def raw_bound(env_id: str, threads: int, seconds: float, rng) -> float:
    """Bare mj_step for one env step's simulated time, per thread on its own MjData, summed over the threads."""
    env = gymnasium.make(env_id)
    base = env.unwrapped
    model, skip = base.model, base.frame_skip
    datas, starts = [], []
    for t in range(threads):
        env.reset(seed=t)
        d = mujoco.MjData(model)
        d.qpos[:], d.qvel[:] = base.data.qpos, base.data.qvel
        d.ctrl[:] = np.pi * rng.uniform(-1, 1, 28)
        mujoco.mj_forward(model, d)
        datas.append(d)
        starts.append((d.qpos.copy(), d.qvel.copy()))
    counts = [0] * threads
    stop = threading.Event()

    def run(t):
        d, (q0, v0) = datas[t], starts[t]
        while not stop.is_set():
            for _ in range(RECOPY_EVERY):
                mujoco.mj_step(model, d, nstep=skip)
            counts[t] += RECOPY_EVERY
            d.qpos[:], d.qvel[:] = q0, v0

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    env.close()
    return sum(counts) / elapsed


def peer_vector(envs, seconds: float, rng) -> float:
    """Steps/s of a reset Gymnasium-style vector env of 2 Humanoids under random actions; closes it."""
    actions = rng.uniform(-0.4, 0.4, (256, 2, 17)).astype(np.float32)
    k = [0]

    def step():
        envs.step(actions[k[0] % 256])
        k[0] += 1
        return 2

    rate = timed_loop(step, seconds)
    envs.close()
    return rate


def humanoid_async(seconds: float, rng) -> float:
    envs = gymnasium.vector.AsyncVectorEnv([lambda: gymnasium.make("Humanoid-v5")] * 2)
    envs.reset(seed=0)
    return peer_vector(envs, seconds, rng)


def envpool_humanoid(seconds: float, rng) -> float | str:
    try:
        import envpool
    except ImportError as err:
        return f"envpool not importable ({err})"
    envs = envpool.make("Humanoid-v4", env_type="gymnasium", num_envs=2, num_threads=2, seed=0)
    envs.reset()
    return peer_vector(envs, seconds, rng)


def training(algo: str, path: str, clip: str, env_id: str, n: int, rollout: int) -> float:
    """``learn`` steps/s over two iterations, after one warm-up iteration."""
    import torch as th
    from sb3_contrib import TRPO
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    th.set_num_threads(1)
    if path == "subproc":
        envs = make_vec_env(f"sb3_mimic:{env_id}", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    else:
        envs = MimicHumanoidVecEnv(n, clip, threads=2, seed=0)
    n_steps = rollout // envs.num_envs
    cls = TRPO if algo == "trpo" else PPO
    model = cls("MlpPolicy", envs, n_steps=n_steps, batch_size=256, seed=0, device="cpu", verbose=0)
    model.learn(n_steps * envs.num_envs)  # warm-up iteration
    start = time.perf_counter()
    model.learn(2 * n_steps * envs.num_envs, reset_num_timesteps=False)
    rate = 2 * n_steps * envs.num_envs / (time.perf_counter() - start)
    envs.close()
    return rate


def median(values):
    return statistics.median(values) if values else float("nan")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="MimicHumanoidWalk-v0", help="env id (default MimicHumanoidWalk-v0)")
    p.add_argument("--n_envs", type=int, default=32, help="characters of the vector env (default 32)")
    p.add_argument("--more_n_envs", type=int, nargs="*", default=[128], metavar="N",
                   help="other batch sizes of the vector env on 2 threads, each against the same raw bound (default "
                        "128: a step's batch-wide Python work is nearly fixed, so its share falls as N grows)")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per subject per round (default 3)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--rollout", type=int, default=4096, help="training: env steps per iteration (default 4096)")
    p.add_argument("--no_training", action="store_true", help="skip the TRPO/PPO training measurements")
    p.add_argument("--out", type=Path, default=RESULTS / "env_throughput.md", help="Markdown report")
    p.add_argument("--json", type=Path, default=RESULTS / "env_throughput.json", help="figures as JSON")
    args = p.parse_args(argv)
    if min(args.n_envs, args.rounds, *args.more_n_envs) < 1 or not args.seconds > 0 or args.rollout < args.n_envs:
        p.error("--n_envs, --more_n_envs and --rounds must be at least 1, --seconds positive, --rollout at least "
                "--n_envs")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    clip = gymnasium.spec(args.env).kwargs.get("motion", "walk")
    rng = np.random.default_rng(0)
    n, s = args.n_envs, args.seconds
    subjects = {
        "single env": lambda: single_env(args.env, s, rng),
        "vector env, 1 thread": lambda: vector_env(clip, n, 1, s, rng),
        "vector env, 2 threads": lambda: vector_env(clip, n, 2, s, rng),
        **{f"vector env, 2 threads, {k} characters": (lambda k=k: vector_env(clip, k, 2, s, rng))
           for k in args.more_n_envs if k != n},
        "raw bound, 1 thread": lambda: raw_bound(args.env, 1, s, rng),
        "raw bound, 2 threads": lambda: raw_bound(args.env, 2, s, rng),
        "Humanoid-v5, AsyncVectorEnv x2": lambda: humanoid_async(s, rng),
        "EnvPool Humanoid-v4, 2 threads": lambda: envpool_humanoid(s, rng),
    }
    if not args.no_training:
        for algo in ("trpo", "ppo"):
            for path in ("subproc", "batched"):
                subjects[f"{algo.upper()} training, {path}"] = (
                    lambda algo=algo, path=path: training(algo, path, clip, args.env, n, args.rollout))
    rounds: list[dict[str, float | str]] = []
    for r in range(args.rounds):
        row = {}
        for name, run in subjects.items():
            row[name] = run()
            shown = f"{row[name]:,.0f} steps/s" if isinstance(row[name], float) else row[name]
            print(f"round {r + 1}/{args.rounds}: {name}: {shown}", flush=True)
        rounds.append(row)

    def fig(name):
        values = [row[name] for row in rounds if isinstance(row[name], float)]
        return median(values) if values else next(row[name] for row in rounds)

    def ratio(a, b):
        values = [row[a] / row[b] for row in rounds if isinstance(row[a], float) and isinstance(row[b], float)]
        return median(values)

    figures = {name: fig(name) for name in subjects}
    ratios = {
        "vector env (2 threads) / raw bound (2 threads)": ratio("vector env, 2 threads", "raw bound, 2 threads"),
        "vector env (2 threads) / single env": ratio("vector env, 2 threads", "single env"),
        "vector env (1 thread) / raw bound (1 thread)": ratio("vector env, 1 thread", "raw bound, 1 thread"),
        "single env / raw bound (1 thread)": ratio("single env", "raw bound, 1 thread"),
        "raw bound: 2 threads / 1 thread": ratio("raw bound, 2 threads", "raw bound, 1 thread"),
        "vector env: 2 threads / 1 thread": ratio("vector env, 2 threads", "vector env, 1 thread"),
        **{f"vector env (2 threads, {k} characters) / raw bound (2 threads)":
           ratio(f"vector env, 2 threads, {k} characters", "raw bound, 2 threads") for k in args.more_n_envs if k != n},
    }
    checks = [
        (f"vector env >= {TARGET_OF_BOUND} of the 2-thread raw bound",
         ratios["vector env (2 threads) / raw bound (2 threads)"], TARGET_OF_BOUND),
        (f"vector env >= {TARGET_OVER_SINGLE}x the single env", ratios["vector env (2 threads) / single env"],
         TARGET_OVER_SINGLE),
    ]
    checks += [(f"vector env with {k} characters >= {TARGET_OF_BOUND} of the 2-thread raw bound",
                ratios[f"vector env (2 threads, {k} characters) / raw bound (2 threads)"], TARGET_OF_BOUND)
               for k in args.more_n_envs if k != n]
    if not args.no_training:
        for algo in ("TRPO", "PPO"):
            ratios[f"{algo} batched / vector env"] = ratio(f"{algo} training, batched", "vector env, 2 threads")
            ratios[f"{algo} batched / {algo} subproc"] = ratio(f"{algo} training, batched", f"{algo} training, subproc")
        checks += [
            (f"TRPO training >= {TARGET_TRAIN_OF_VEC} of the vector env", ratios["TRPO batched / vector env"],
             TARGET_TRAIN_OF_VEC),
            (f"TRPO training >= {TARGET_TRAIN_OVER_SUBPROC}x the SubprocVecEnv path", ratios["TRPO batched / TRPO subproc"],
             TARGET_TRAIN_OVER_SUBPROC),
        ]
    now = datetime.datetime.now().astimezone()
    lines = report_header(
        "Env and training throughput", now,
        f"{args.env}, random actions, {args.rounds} interleaved rounds of {args.seconds:g} s per subject; vector env "
        f"{n} characters; training rollouts of {args.rollout} env steps per iteration (default networks, one torch "
        "thread). Medians over the rounds; ratios are medians of per-round ratios.",
    )
    lines += ["", "| subject | env steps/s (median) | per round |", "|---|---:|---|"]
    for name in subjects:
        value = figures[name]
        per_round = ", ".join(f"{row[name]:,.0f}" if isinstance(row[name], float) else "-" for row in rounds)
        shown = f"{value:,.0f}" if isinstance(value, float) else value
        lines.append(f"| {name} | {shown} | {per_round} |")
    lines += ["", "| ratio | median |", "|---|---:|"] + [f"| {k} | {v:.2f} |" for k, v in ratios.items()]
    lines += ["", "Checks (the batched-simulation issue's targets):", ""]
    lines += [f"- {'PASS' if value >= need else 'FAIL'}: {label} (measured {value:.2f})" for label, value, need in checks]
    report = "\n".join(lines) + "\n"
    print("\n" + report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    args.json.write_text(json.dumps({"when": now.isoformat(), "args": {k: str(v) for k, v in vars(args).items()},
                                     "rounds": rounds, "figures": figures, "ratios": ratios}, indent=1) + "\n")
    print(f"Wrote {args.out} and {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
