"""Env and training throughput: the single env, the batched vector env, the raw physics bound and peers.

What is measured, in one run, with uniformly random actions in [-1, 1] drawn before timing (episodes reset when
they end; the resets count in the time):

1. **single env**: ``gymnasium.make(ENV)`` (default ``MimicHumanoidWalk-v0``), one character.
2. **vector env**: ``sb3_mimic.envs.MimicHumanoidVecEnv(--n_envs)`` on 1 and on 2 physics threads, and with each
   of ``--more_n_envs`` characters on 2 threads.
3. **raw bound**: bare ``mujoco.mj_step(model, data, nstep=frame_skip)`` of the env's model for the same simulated
   time per step, from states the vector env's characters step from under random actions (recorded once per run,
   controls included: the same contact and solver load), set with ``mj_setState`` before each step; in one
   thread, and in two threads each stepping its own ``MjData`` at once (MuJoCo releases the GIL).
4. **peers**: gymnasium's ``Humanoid-v5`` in ``gymnasium.vector.AsyncVectorEnv`` with 2 worker processes, and
   EnvPool's ``Humanoid-v4`` on 2 threads (if ``envpool`` imports; it is a peer, not a dependency). Their step is
   5 physics steps of another model: compare them in steps/s only as a rough reference.
5. **training**: the product's TRPO and PPO (``sb3_mimic.rl.ALGOS``: ``MimicTRPO``, whose update is
   ``sb3_mimic.trpo.GaussianTRPO``'s, and ``MimicPPO``; the product's default network, one torch thread) ``learn``
   steps/s on the ``SubprocVecEnv`` path (2 workers) and on the batched vector env (``--n_envs`` characters, 2
   threads), with the same rollout size per iteration (``--rollout`` env steps: ``n_steps = rollout / n_envs``),
   after one warm-up iteration; and sb3-contrib's own TRPO on the batched vector env, for what the faster update
   buys.

Subjects are interleaved in ``--rounds`` rounds. In each round every env subject (1-4) is set up once and warmed
up for 0.5 s untimed (its reference tables filled, the compiled kernels loaded, worker processes started), then
all of them are stepped in turn, ``--slices`` times over, for ``--seconds / --slices`` each: subjects compared in
a ratio are measured seconds apart, so that the machine's noise (the speed of one core moves by a third within a
minute here, and by as much between neighbouring seconds) touches both alike. An env subject's figure in a round
is the median over its slices; a ratio of two env subjects is the median of their ratios slice by slice, over
all rounds. The training subjects (5) run once per round after the env subjects; their ratios are medians of
per-round ratios. A figure is the median over the rounds. PASS/FAIL lines show the batched-simulation issue's
targets; the exit status is 0 whatever the figures.

Run from the repository root::

    .venv/bin/python benchmarks/env_throughput.py                 # about 5 minutes on 2 cores
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
import itertools  # noqa: E402
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
WARMUP_S = 0.5
TARGET_OF_BOUND, TARGET_OVER_SINGLE = 0.8, 2.0
TARGET_TRAIN_OF_VEC, TARGET_TRAIN_OVER_SUBPROC = 0.5, 3.0


class Subject:
    """A subject of the env measurements: set up once per round, warmed up, then stepped in slices of time."""

    def __init__(self, step, close) -> None:
        self._step, self._close = step, close
        self.run(WARMUP_S)  # untimed: the reference tables, the compiled kernels, the worker processes

    def run(self, seconds: float) -> float:
        """Calls ``step()`` (which returns the env steps it took) for ``seconds``; returns steps per second."""
        steps, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            steps += self._step()
        return steps / elapsed

    def close(self) -> None:
        self._close()


def single_env(env_id: str, rng) -> Subject:
    env = gymnasium.make(env_id)
    env.reset(seed=0)
    actions = itertools.cycle(rng.uniform(-1, 1, (4096, 28)).astype(np.float32))

    def step():
        _, _, terminated, truncated, _ = env.step(next(actions))
        if terminated or truncated:
            env.reset()
        return 1

    return Subject(step, env.close)


def vector_env(clip: str, n: int, threads: int, rng) -> Subject:
    vec = MimicHumanoidVecEnv(n, clip, threads=threads, seed=0)
    vec.reset()
    actions = itertools.cycle(rng.uniform(-1, 1, (256, n, 28)).astype(np.float32))

    def step():
        vec.step(next(actions))
        return n

    return Subject(step, vec.close)


def episode_states(clip: str, n: int, rng, steps: int = 64) -> np.ndarray:
    """Physics states (``mjSTATE_INTEGRATION`` rows, controls included) that the vector env's characters are in
    under random actions, each one from which the env steps on (the last state of an episode left out)."""
    vec = MimicHumanoidVecEnv(n, clip, threads=1, seed=1)
    vec.reset()
    model, spec = vec.batch.model, mujoco.mjtState.mjSTATE_INTEGRATION
    rows = []
    for _ in range(steps):
        _, _, done, _ = vec.step(rng.uniform(-1, 1, (n, 28)).astype(np.float32))
        for i in np.flatnonzero(~done):
            row = np.empty(mujoco.mj_stateSize(model, spec))
            mujoco.mj_getState(model, vec.batch.data(int(i)), row, spec)
            rows.append(row)
    vec.close()
    return np.array(rows)


class RawBound(Subject):
    """Bare mj_step for one env step's simulated time, per thread on its own MjData, summed over the threads, from
    the states the vector env steps from (:func:`episode_states`), each thread going through its share in turn."""

    def __init__(self, env_id: str, threads: int, states: np.ndarray) -> None:
        env = gymnasium.make(env_id)
        self.model, self.skip = env.unwrapped.model, env.unwrapped.frame_skip
        env.close()
        self.datas = [mujoco.MjData(self.model) for _ in range(threads)]
        self.shares = np.array_split(states, threads)
        super().__init__(None, lambda: None)

    def run(self, seconds: float) -> float:
        counts = [0] * len(self.datas)
        stop = threading.Event()
        spec = mujoco.mjtState.mjSTATE_INTEGRATION

        def work(t):
            d, share = self.datas[t], self.shares[t]
            while not stop.is_set():
                mujoco.mj_setState(self.model, d, share[counts[t] % len(share)], spec)
                mujoco.mj_step(self.model, d, nstep=self.skip)
                counts[t] += 1

        workers = [threading.Thread(target=work, args=(t,)) for t in range(len(self.datas))]
        start = time.perf_counter()
        for w in workers:
            w.start()
        time.sleep(seconds)
        stop.set()
        for w in workers:
            w.join()
        return sum(counts) / (time.perf_counter() - start)


def peer_vector(envs, rng) -> Subject:
    """A reset Gymnasium-style vector env of 2 Humanoids under random actions."""
    actions = itertools.cycle(rng.uniform(-0.4, 0.4, (256, 2, 17)).astype(np.float32))

    def step():
        envs.step(next(actions))
        return 2

    return Subject(step, envs.close)


def humanoid_async(rng) -> Subject:
    envs = gymnasium.vector.AsyncVectorEnv([lambda: gymnasium.make("Humanoid-v5")] * 2)
    envs.reset(seed=0)
    return peer_vector(envs, rng)


def envpool_humanoid(rng) -> Subject | str:
    try:
        import envpool
    except ImportError as err:
        return f"envpool not importable ({err})"
    envs = envpool.make("Humanoid-v4", env_type="gymnasium", num_envs=2, num_threads=2, seed=0)
    envs.reset()
    return peer_vector(envs, rng)


def training(algo: str, path: str, clip: str, env_id: str, n: int, rollout: int) -> float:
    """``learn`` steps/s over two iterations, after one warm-up iteration. ``algo``: ``trpo`` and ``ppo`` are the
    product's learners (:data:`sb3_mimic.rl.ALGOS`, with the product's default network), ``sb3-contrib trpo`` is
    sb3-contrib's own TRPO (the same network, its own update)."""
    import torch as th
    from sb3_contrib import TRPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from sb3_mimic.configs import RunConfig
    from sb3_mimic.policies import policy_kwargs_for
    from sb3_mimic.rl import ALGOS

    th.set_num_threads(1)
    if path == "subproc":
        envs = make_vec_env(f"sb3_mimic:{env_id}", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    else:
        envs = MimicHumanoidVecEnv(n, clip, threads=2, seed=0)
    n_steps = rollout // envs.num_envs
    cls = TRPO if algo == "sb3-contrib trpo" else ALGOS[algo]
    model = cls("MlpPolicy", envs, n_steps=n_steps, batch_size=256, seed=0, device="cpu", verbose=0,
                policy_kwargs=policy_kwargs_for(RunConfig.hidden_size, RunConfig.num_layers))
    model.learn(n_steps * envs.num_envs)  # warm-up iteration
    start = time.perf_counter()
    model.learn(2 * n_steps * envs.num_envs, reset_num_timesteps=False)
    rate = 2 * n_steps * envs.num_envs / (time.perf_counter() - start)
    envs.close()
    return rate


#: The training subjects: (label, learner, vector env).
TRAINING = (
    ("TRPO training, subproc", "trpo", "subproc"),
    ("TRPO training, batched", "trpo", "batched"),
    ("sb3-contrib TRPO training, batched", "sb3-contrib trpo", "batched"),
    ("PPO training, subproc", "ppo", "subproc"),
    ("PPO training, batched", "ppo", "batched"),
)


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
    p.add_argument("--slices", type=int, default=6,
                   help="each round steps every env subject in this many turns of seconds/slices each (default 6)")
    p.add_argument("--rollout", type=int, default=4096, help="training: env steps per iteration (default 4096)")
    p.add_argument("--no_training", action="store_true", help="skip the TRPO/PPO training measurements")
    p.add_argument("--out", type=Path, default=RESULTS / "env_throughput.md", help="Markdown report")
    p.add_argument("--json", type=Path, default=RESULTS / "env_throughput.json", help="figures as JSON")
    args = p.parse_args(argv)
    if min(args.n_envs, args.rounds, args.slices, *args.more_n_envs) < 1 or not args.seconds > 0 or args.rollout < args.n_envs:
        p.error("--n_envs, --more_n_envs, --rounds and --slices must be at least 1, --seconds positive, --rollout at least "
                "--n_envs")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    clip = gymnasium.spec(args.env).kwargs.get("motion", "walk")
    rng = np.random.default_rng(0)
    n, s = args.n_envs, args.seconds
    states = episode_states(clip, n, rng)
    env_subjects = {
        "single env": lambda: single_env(args.env, rng),
        "vector env, 1 thread": lambda: vector_env(clip, n, 1, rng),
        "vector env, 2 threads": lambda: vector_env(clip, n, 2, rng),
        **{f"vector env, 2 threads, {k} characters": (lambda k=k: vector_env(clip, k, 2, rng))
           for k in args.more_n_envs if k != n},
        "raw bound, 1 thread": lambda: RawBound(args.env, 1, states),
        "raw bound, 2 threads": lambda: RawBound(args.env, 2, states),
        "Humanoid-v5, AsyncVectorEnv x2": lambda: humanoid_async(rng),
        "EnvPool Humanoid-v4, 2 threads": lambda: envpool_humanoid(rng),
    }
    training_subjects = {}
    if not args.no_training:
        for label, algo, path in TRAINING:
            training_subjects[label] = lambda algo=algo, path=path: training(algo, path, clip, args.env, n, args.rollout)
    subjects = {**env_subjects, **training_subjects}
    rounds: list[dict[str, float | str]] = []
    slices: list[dict[str, float | str]] = []  # the env subjects' rates in each slice, all subjects side by side
    for r in range(args.rounds):
        built = {name: make() for name, make in env_subjects.items()}
        passes = [{name: subject.run(s / args.slices) if isinstance(subject, Subject) else subject
                   for name, subject in built.items()} for _ in range(args.slices)]
        for subject in built.values():
            if isinstance(subject, Subject):
                subject.close()
        slices += passes
        row: dict[str, float | str] = {}
        for name in env_subjects:
            values = [p[name] for p in passes]
            row[name] = median(values) if isinstance(values[0], float) else values[0]
        for name, run in training_subjects.items():
            row[name] = run()
        for name, value in row.items():
            shown = f"{value:,.0f} steps/s" if isinstance(value, float) else value
            print(f"round {r + 1}/{args.rounds}: {name}: {shown}", flush=True)
        rounds.append(row)

    def fig(name):
        values = [row[name] for row in rounds if isinstance(row[name], float)]
        return median(values) if values else next(row[name] for row in rounds)

    def ratio(a, b):
        """The median of a / b over the slices when both are env subjects (measured seconds apart), else over the
        rounds."""
        rows = slices if a in env_subjects and b in env_subjects else rounds
        values = [row[a] / row[b] for row in rows if isinstance(row[a], float) and isinstance(row[b], float)]
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
        ratios["sb3-contrib TRPO batched / vector env"] = ratio("sb3-contrib TRPO training, batched",
                                                                "vector env, 2 threads")
        ratios["TRPO batched / sb3-contrib TRPO batched"] = ratio("TRPO training, batched",
                                                                  "sb3-contrib TRPO training, batched")
        checks += [
            (f"TRPO training >= {TARGET_TRAIN_OF_VEC} of the vector env", ratios["TRPO batched / vector env"],
             TARGET_TRAIN_OF_VEC),
            (f"TRPO training >= {TARGET_TRAIN_OVER_SUBPROC}x the SubprocVecEnv path", ratios["TRPO batched / TRPO subproc"],
             TARGET_TRAIN_OVER_SUBPROC),
        ]
    now = datetime.datetime.now().astimezone()
    lines = report_header(
        "Env and training throughput", now,
        f"{args.env}, random actions, {args.rounds} rounds of {args.seconds:g} s per env subject, stepped in "
        f"{args.slices} interleaved slices; vector env "
        f"{n} characters; training rollouts of {args.rollout} env steps per iteration (the product's default network, "
        "one torch thread). Medians over the rounds; ratios of env subjects are medians of their slice-by-slice "
        "ratios, those of training of per-round ratios.",
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
    record = {"when": now.isoformat(), "args": {k: str(v) for k, v in vars(args).items()}, "rounds": rounds,
              "slices": slices, "figures": figures, "ratios": ratios}
    args.json.write_text(json.dumps(record, indent=1) + "\n")
    print(f"Wrote {args.out} and {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
