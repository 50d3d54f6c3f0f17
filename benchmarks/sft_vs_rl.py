"""SFT + TRPO against pure TRPO on walk, with the same wall-clock budget on this machine.

In one run, side by side (two processes at once, one core and one env each, so that whatever else the machine
does slows both alike):
1. pure TRPO from scratch (``sb3-mimic train``'s defaults) for ``--minutes`` of training wall time;
2. SFT (``sb3-mimic sft`` defaults on walk), then TRPO fine-tuning (``sb3-mimic finetune`` defaults) for what is
   left of the same ``--minutes`` (the SFT time counts against the budget);
both evaluated at the same checkpoints (every ``--save_per_iter`` iterations, same episodes and seeds).
Writes the learning curves (PNG) and a Markdown table of normalised return, time to fall and MPJPE at equal env
steps and at equal wall time, and reports TRPO's training throughput (env steps/s) against the env's own
single-core throughput measured in the same run.

    .venv/bin/python benchmarks/sft_vs_rl.py                 # 2 x 30 minutes
    .venv/bin/python benchmarks/sft_vs_rl.py --minutes 3     # a quick look
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym
import numpy as np

import sb3_mimic  # noqa: F401
from sb3_mimic.plotting import plot_learning_curves
from sb3_mimic.rl import RunConfig, run_training
from sb3_mimic.sft import SFTConfig, run_sft

ENV_ID = "MimicHumanoidWalk-v0"


def env_throughput(seconds: float = 3.0) -> float:
    """Single-process env steps/s with random actions (the foundation benchmark's figure, measured here)."""
    env = gym.make(ENV_ID)
    actions = np.random.default_rng(0).uniform(-1, 1, (100_000, 28)).astype(np.float32)
    env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(actions[steps % len(actions)])
        steps += 1
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def read_rows(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "evaluations.csv").open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def at(rows: list[dict[str, float]], key: str, value: float) -> dict[str, float] | None:
    """The last evaluation with rows[key] <= value."""
    before = [r for r in rows if r[key] <= value + 1e-9]
    return before[-1] if before else None


def fmt(row: dict[str, float] | None) -> str:
    if row is None:
        return "- | - | -"
    return f"{row['normalized_return']:.3f} | {row['mean_survival_s']:.2f} | {row['mpjpe_mm']:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget per contender")
    parser.add_argument("--save_per_iter", type=int, default=5, help="evaluate every K TRPO iterations")
    parser.add_argument("--eval_episodes", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/sft_vs_rl", help="output folder (runs, PNG, Markdown)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--contender", choices=["trpo", "sft_trpo"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = Path(args.out)
    budget = 60.0 * args.minutes
    common = dict(env_id=ENV_ID, env_kwargs={}, num_timesteps=10**9, save_per_iter=args.save_per_iter,
                  eval_episodes=args.eval_episodes, seed=args.seed, n_envs=1, vec_env="subproc")
    if args.contender == "trpo":
        run_training(RunConfig(algo="trpo", **common, time_budget_s=budget), out / "trpo", progress_bar=False)
        return
    if args.contender == "sft_trpo":
        start = time.perf_counter()
        sft = run_sft(SFTConfig(mocap="walk", save_path=str(out / "walk_sft.zip"), no_eval=True), progress_bar=False)
        sft_time = time.perf_counter() - start
        (out / "sft_time.json").write_text(json.dumps({"sft_time_s": sft_time}))
        print(f"SFT took {sft_time:.0f} s; fine-tuning for {(budget - sft_time) / 60:.1f} min", flush=True)
        run_training(
            RunConfig(algo="trpo", **common, time_budget_s=budget - sft_time, load_sft_pretrain=str(sft.save_path)),
            out / "sft_trpo", progress_bar=False,
        )
        return

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    single_env = env_throughput()
    print(f"env throughput (one process, random actions): {single_env:.0f} steps/s", flush=True)
    print(f"== pure TRPO and SFT + TRPO side by side, {args.minutes:g} min each", flush=True)
    argv = [sys.executable, __file__, "--minutes", str(args.minutes), "--save_per_iter", str(args.save_per_iter),
            "--eval_episodes", str(args.eval_episodes), "--out", str(out), "--seed", str(args.seed)]
    procs = []
    for contender in ("trpo", "sft_trpo"):
        log = (out / f"{contender}.log").open("w")
        procs.append(subprocess.Popen([*argv, "--contender", contender], stdout=log, stderr=subprocess.STDOUT))
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a contender failed (exit codes {codes}); see {out}/*.log")
    sft_time = json.loads((out / "sft_time.json").read_text())["sft_time_s"]
    trpo_wall = budget

    trpo_rows, sft_rows = read_rows(out / "trpo"), read_rows(out / "sft_trpo")
    for row in sft_rows:  # the SFT time is part of this contender's wall time
        row["wall_time_s"] += sft_time
    png = plot_learning_curves([out / "trpo", out / "sft_trpo"], out / "curves.png", labels=["TRPO", "SFT + TRPO"],
                               wall_offsets_s=[0.0, sft_time], title="Walk: pure TRPO vs SFT + TRPO (wall time includes SFT)")

    lines = [
        f"# SFT + TRPO vs pure TRPO on walk, {args.minutes:g} min each",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}; both contenders ran at once, "
        "one env and one core each; "
        f"{time.strftime('%Y-%m-%d %H:%M')}. SFT took {sft_time:.0f} s of the SFT + TRPO budget "
        "(the fine-tuning curve's wall times include it).",
        "",
        "Normalised return (0..1) | time to fall (s) | MPJPE (mm), deterministic evaluation over "
        f"{args.eval_episodes} seeded reference-state starts.",
        "",
        "| at | TRPO return | TRPO time to fall | TRPO MPJPE | SFT + TRPO return | SFT + TRPO time to fall | "
        "SFT + TRPO MPJPE |",
        "|---|---|---|---|---|---|---|",
    ]
    max_steps = min(trpo_rows[-1]["env_steps"], sft_rows[-1]["env_steps"])
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        steps = frac * max_steps
        lines.append(f"| {steps:,.0f} env steps | {fmt(at(trpo_rows, 'env_steps', steps))} | "
                     f"{fmt(at(sft_rows, 'env_steps', steps))} |")
    for frac in (0.25, 0.5, 0.75, 1.0):
        wall = frac * budget
        lines.append(f"| {wall / 60:.1f} min | {fmt(at(trpo_rows, 'wall_time_s', wall))} | "
                     f"{fmt(at(sft_rows, 'wall_time_s', wall))} |")
    trpo_rate = trpo_rows[-1]["env_steps"] / max(trpo_rows[-1]["wall_time_s"], 1e-9)
    fine_rate = sft_rows[-1]["env_steps"] / max(sft_rows[-1]["wall_time_s"] - sft_time, 1e-9)
    lines += [
        "",
        "| throughput | env steps/s | / single-process env |",
        "|---|---|---|",
        f"| env alone (one process, random actions, measured before the runs) | {single_env:.0f} | 1.00 |",
        f"| pure TRPO training | {trpo_rate:.0f} | {trpo_rate / single_env:.2f} |",
        f"| TRPO fine-tuning | {fine_rate:.0f} | {fine_rate / single_env:.2f} |",
        "",
        f"Learning curves: {png}",
    ]
    table = "\n".join(lines) + "\n"
    (out / "sft_vs_rl.md").write_text(table)
    (out / "sft_vs_rl.json").write_text(json.dumps(
        {"sft_time_s": sft_time, "trpo_wall_s": trpo_wall, "env_steps_per_s": single_env,
         "trpo": trpo_rows, "sft_trpo": sft_rows}, indent=1))
    print(table)


if __name__ == "__main__":
    main()
