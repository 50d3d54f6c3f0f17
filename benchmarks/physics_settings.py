"""What each physics setting costs and changes: physics rate, solver iterations and tolerance, friction cone.

For every setting (a change from the env's defaults: 240 Hz physics, MuJoCo's Newton solver with 100 iterations and
tolerance 1e-8, pyramidal friction cone), in one run:

1. **price**: bare ``mj_step`` of the env's model for one control step's simulated time, in one thread, from the
   clip's reference states (recopied every 30 steps), as env steps per second; and its ratio to the default's
   measured in the same round (rounds interleave the settings).
2. **effect** on the clips ``--clips`` (default walk, run, dance_a, backflip): PD tracking of the reference (the PD
   expert, lookahead 1) from ``--starts`` seeded reference-state starts: time to fall, and the mean reward of the
   first second (30 steps, or up to the fall).
3. **equivalence**: a setting is equivalent on a clip when both figures differ from the default's by less than
   twice the standard error of their difference (over the starts). With ``--check_with_mpc SETTING``, the MPC
   expert (walk, its clip settings, ``--check_starts`` starts) must also keep walk up the full 20 s from at least 9
   of 10 starts.

Run from the repository root::

    .venv/bin/python benchmarks/physics_settings.py                          # a few minutes
    .venv/bin/python benchmarks/physics_settings.py --check_with_mpc sim_120  # adds the MPC check (about 5 min)

Writes ``benchmarks/results/physics_settings.md`` and ``.json``. The exit status is 0 whatever the figures.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sb3_mimic.evaluation import evaluate, policy_actor  # noqa: E402
from sb3_mimic.experts import make_expert  # noqa: E402
from sb3_mimic.registration import env_spec_for  # noqa: E402

from _machine import report_header  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
#: name -> (env kwargs, changes to model.opt)
SETTINGS: dict[str, tuple[dict, dict]] = {
    "default": ({}, {}),
    "sim_120": ({"sim_frequency": 120}, {}),
    "iterations_10": ({}, {"iterations": 10, "ls_iterations": 10}),
    "tolerance_1e-5": ({}, {"tolerance": 1e-5}),
    "elliptic_cone": ({}, {"cone": mujoco.mjtCone.mjCONE_ELLIPTIC}),
}


def make_env(clip: str, setting: str):
    env_id, kwargs = env_spec_for(clip)
    env_kwargs, opt = SETTINGS[setting]
    env = gymnasium.make(env_id, **kwargs, **env_kwargs)
    for name, value in opt.items():
        setattr(env.unwrapped.model.opt, name, value)
    return env


def price(clip: str, setting: str, seconds: float) -> float:
    env = make_env(clip, setting)
    base = env.unwrapped
    model, skip = base.model, base.frame_skip
    env.reset(seed=0)
    data = mujoco.MjData(model)
    q0, v0 = base.data.qpos.copy(), base.data.qvel.copy()
    data.ctrl[:] = base.pd_target_action(q0) * math.pi
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        data.qpos[:], data.qvel[:] = q0, v0
        for _ in range(30):
            mujoco.mj_step(model, data, nstep=skip)
        calls += 30
    env.close()
    return calls / (time.perf_counter() - start)


def effect(clip: str, setting: str, starts: int, seed: int) -> dict:
    env = make_env(clip, setting)
    expert = make_expert("pd", env, lookahead=1)
    survival, first = [], []
    for i in range(starts):
        obs, _ = env.reset(seed=seed + i)
        rewards, steps, done = [], 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(expert.label(obs[None])[0])
            steps += 1
            if steps <= 30:
                rewards.append(reward)
            done = terminated or truncated
        survival.append(steps * env.unwrapped.dt)
        first.append(float(np.mean(rewards)))
    env.close()
    return {"survival_s": survival, "first_second_reward": first}


def mpc_check(setting: str, starts: int, seed: int) -> dict:
    env = make_env("walk", setting)
    expert = make_expert("mpc", env, seed=seed)
    start = time.perf_counter()
    result = evaluate(policy_actor(expert), env, episodes=starts, seed=seed)
    expert.close()
    env.close()
    up = starts - round(result.fall_rate * starts)
    return {"full_length": up, "mean_survival_s": result.mean_survival_s, "wall_s": time.perf_counter() - start}


def mean_se(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", nargs="+", default=["walk", "run", "dance_a", "backflip"])
    p.add_argument("--settings", nargs="+", default=list(SETTINGS)[1:], choices=list(SETTINGS)[1:])
    p.add_argument("--starts", type=int, default=40, help="PD-tracking starts per clip (default 40)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the price measurement (default 3)")
    p.add_argument("--seconds", type=float, default=1.5, help="seconds per price measurement (default 1.5)")
    p.add_argument("--check_with_mpc", nargs="*", default=[], metavar="SETTING",
                   help="settings to check with the MPC expert too (not an MPC setting: those are --mpc_*)")
    p.add_argument("--check_starts", type=int, default=10, help="MPC starts per checked setting (default 10)")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--out", type=Path, default=RESULTS / "physics_settings.md")
    p.add_argument("--json", type=Path, default=RESULTS / "physics_settings.json")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    names = ["default", *args.settings]
    prices = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names:
            prices[name].append(price("walk", name, args.seconds))
        print(f"price round {r + 1}: " + ", ".join(f"{n} {prices[n][-1]:,.0f}" for n in names), flush=True)
    ratios = {n: statistics.median(p / d for p, d in zip(prices[n], prices["default"], strict=True)) for n in names}
    effects = {n: {c: effect(c, n, args.starts, args.seed) for c in args.clips} for n in names}
    for n in names:
        print(f"effect {n}: " + ", ".join(f"{c} {statistics.fmean(effects[n][c]['survival_s']):.2f} s" for c in args.clips),
              flush=True)
    mpc = {n: mpc_check(n, args.check_starts, args.seed) for n in args.check_with_mpc}
    now = datetime.datetime.now().astimezone()
    lines = report_header(
        "Physics settings: price and effect", now,
        f"PD tracking from {args.starts} seeded starts per clip (seed {args.seed}); price: bare mj_step per control "
        f"step on walk, one thread, {args.rounds} interleaved rounds of {args.seconds:g} s (median ratio to the default).",
        "", "| setting | env steps/s (physics) | x default | " + " | ".join(
            f"{c}: time to fall (s) | {c}: 1st-s reward" for c in args.clips) + " | equivalent |",
        "|---|---:|---:|" + "---:|---:|" * len(args.clips) + "---|",
    )
    verdicts = {}
    for n in names:
        cells, ok = [], True
        for c in args.clips:
            for key in ("survival_s", "first_second_reward"):
                m, se = mean_se(effects[n][c][key])
                dm, dse = mean_se(effects["default"][c][key])
                same = abs(m - dm) <= 2 * math.hypot(se, dse) + 1e-12
                ok &= same
                cells.append(f"{m:.3f} ± {se:.3f}{'' if same or n == 'default' else ' (differs)'}")
        if n in mpc:
            ok &= mpc[n]["full_length"] >= 9
        verdicts[n] = ok
        verdict = "-" if n == "default" else ("yes" if ok else "no")
        head = f"| {n} | {statistics.median(prices[n]):,.0f} | {ratios[n]:.2f} | "
        lines.append(head + " | ".join(cells) + f" | {verdict} |")
    if mpc:
        lines += ["", "MPC expert on walk (its clip settings), starts kept up the full 20 s:", ""]
        lines += [f"- {n}: {v['full_length']}/{args.check_starts} (mean {v['mean_survival_s']:.2f} s, "
                  f"{v['wall_s']:.0f} s wall)" for n, v in mpc.items()]
    report = "\n".join(lines) + "\n"
    print("\n" + report)
    args.out.write_text(report)
    args.json.write_text(json.dumps({"when": now.isoformat(), "prices": prices, "ratios": ratios, "effects": effects,
                                     "mpc": mpc, "equivalent": verdicts}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
