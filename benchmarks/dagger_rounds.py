"""The ``sb3-mimic dagger`` pipeline round by round: how long its policy survives after each round, and when.

One run of ``run_dagger`` (the ``sb3-mimic dagger`` pipeline, from scratch) with the MPC expert, timed as a whole:
its wall time is the pipeline's, expert labelling and BC included (and the copy of the policy that is set aside after
every round, a few milliseconds). Once the run is over, every round's policy acts alone, deterministically, from
``--episodes`` seeded reference-state starts (``evaluate(..., seed=--seed)``, up to the clip's registered episode
limit, 20 s for the looping clips such as walk). Reported per round: beta, the labelled steps and episodes of the
round, how long the round's mixed episodes lasted, the cumulative labels and wall minutes, and the policy's mean
survival, starts up the whole episode limit, normalised return and MPJPE.

The defaults are the best configuration measured so far: a stateless 4-member MPC ensemble with 3
iterations, blended collection in which the expert's share falls linearly over the first 8 rounds (later rounds
run the learner alone), a 256x2 policy. Two
checks of the MPC issue are printed with PASS/FAIL: the last round's policy survives >= 15 s on average, and the
pipeline takes < 30 min. The exit status is 0 whatever the figures.

Run from the repository root::

    .venv/bin/python benchmarks/dagger_rounds.py               # about 1-1.5 hours on 2 cores
    .venv/bin/python benchmarks/dagger_rounds.py --rounds 6 --mpc_ensemble 2
    .venv/bin/python benchmarks/dagger_rounds.py --mixing switch --beta_rampdown 0 --beta_decay 0.7 --json out.json

The MPC and DAgger options are ``sb3-mimic dagger``'s (``--mpc_*``, ``--mixing``, ...), with the defaults above.
"""

from __future__ import annotations

import os

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"  # headless; nothing is rendered, but the envs import the GL backend

import argparse
import datetime
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout, installed or not
from sb3_mimic.dagger import DAggerConfig, beta_schedule, run_dagger
from sb3_mimic.evaluation import evaluate, policy_actor
from sb3_mimic.cli import add_dagger_options, add_mpc_options, dagger_options, mpc_overrides
from sb3_mimic.policies import load_policy
from sb3_mimic.registration import env_spec_for

from _machine import describe, load_average, machine, report_header, stopwatch_printer
from experts import PIPELINE_LIMIT_S
from imitation.data import serialize

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_MPC = {"mpc_stateless": True, "mpc_iterations": 3, "mpc_ensemble": 4}
DEFAULT_DAGGER = {"mixing": "blend", "beta_rampdown": 8, "epochs_per_round": 30, "hidden_size": 256}
SURVIVAL_TARGET_S = 15.0


def round_episodes(run_dir: Path, round_num: int) -> tuple[int, int]:
    """(labelled steps, episodes) that round ``round_num`` saved under ``RUN_DIR/demos``."""
    folder = run_dir / "demos" / f"round-{round_num:03d}"
    lengths = [len(t) for path in sorted(folder.glob("*.npz")) for t in serialize.load(path)]
    if not lengths:
        raise RuntimeError(f"{folder} holds no labelled episodes")
    return sum(lengths), len(lengths)


def dagger_config(args) -> DAggerConfig:
    return DAggerConfig(mocap=args.mocap, expert="mpc", rounds=args.rounds, steps_per_round=args.steps_per_round,
                        seed=args.seed, mpc_kwargs=dict(args.mpc), **args.dagger)


def run(args, folder: Path, say) -> dict:
    config = dagger_config(args)
    run_dir, snapshots = folder / "run", folder / "policies"
    snapshots.mkdir(parents=True, exist_ok=True)
    finished: list[float] = []  # wall seconds at the end of each round

    def on_round(line: str) -> None:
        if line.startswith("round "):
            finished.append(time.perf_counter() - start)
            shutil.copyfile(run_dir / "policy.zip", snapshots / f"round-{len(finished):03d}.zip")
        say(f"  {line}")

    start = time.perf_counter()
    run_dagger(config, run_dir, log=on_round)
    wall = time.perf_counter() - start
    if len(finished) != config.rounds:  # the snapshots follow run_dagger's "round r/R: ..." log lines
        raise RuntimeError(f"saw {len(finished)} finished rounds in run_dagger's log, expected {config.rounds}")
    env_id, env_kwargs = env_spec_for(args.mocap)
    env = gym.make(env_id, **env_kwargs)
    schedule = beta_schedule(config)
    rows, labels = [], 0
    for r, at in enumerate(finished):
        steps, episodes = round_episodes(run_dir, r)
        labels += steps
        say(f"evaluating the policy after round {r + 1} over {args.episodes} starts")
        policy = load_policy(snapshots / f"round-{r + 1:03d}.zip", env=env)
        result = evaluate(policy_actor(policy), env, episodes=args.episodes, seed=args.seed).to_dict()
        rows.append({**result, "round": r + 1, "beta": schedule(r), "round_steps": steps, "round_episodes": episodes,
                     "mixed_episode_s": steps / episodes * env.unwrapped.dt, "labels": labels, "wall_s": at})
    limit_s = env.spec.max_episode_steps * env.unwrapped.dt
    env.close()
    return {"config": asdict(config), "wall_s": wall, "episode_limit_s": limit_s, "rounds": rows}


def markdown_table(rows: list[dict], limit_s: float) -> list[str]:
    lines = ["| round | beta | labels (episodes) | mixed episode (s) | labels so far | wall (min) | survival (s) "
             f"| up {limit_s:.0f} s | norm. return | MPJPE (mm) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        up = f"{r['episodes'] - round(r['fall_rate'] * r['episodes'])}/{r['episodes']}"
        lines.append(f"| {r['round']} | {r['beta']:.2f} | {r['round_steps']} ({r['round_episodes']}) "
                     f"| {r['mixed_episode_s']:.1f} | {r['labels']} | {r['wall_s'] / 60:.1f} "
                     f"| {r['mean_survival_s']:.2f} | {up} | {r['normalized_return']:.3f} | {r['mpjpe_mm']:.0f} |")
    return lines


def plot(rows: list[dict], limit_s: float, path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 4.3))
    FigureCanvasAgg(fig)
    minutes = [r["wall_s"] / 60 for r in rows]
    survival = [r["mean_survival_s"] for r in rows]
    for panel, (x, xlabel) in enumerate(((np.arange(1, len(rows) + 1), "round"), (minutes, "pipeline wall time (min)"))):
        ax = fig.add_subplot(1, 2, panel + 1)
        ax.plot(x, survival, "o-", label="policy alone")
        ax.plot(x, [r["mixed_episode_s"] for r in rows], "s--", alpha=0.6, label="mixed episodes of the round")
        ax.axhline(SURVIVAL_TARGET_S, color="tab:red", lw=1, ls=":", label=f"target {SURVIVAL_TARGET_S:.0f} s")
        if panel == 1:
            ax.axvline(PIPELINE_LIMIT_S / 60, color="tab:gray", lw=1, ls=":", label="30 min")
        if panel == 0:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"mean survival (s), {limit_s:.0f} s limit")
        ax.set_ylim(0, limit_s * 1.025)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mocap", default="walk", help="clip (default walk)")
    p.add_argument("--rounds", type=int, default=14, help="DAgger rounds (default 14)")
    p.add_argument("--steps_per_round", type=int, default=800, help="labelled steps per round (default 800)")
    p.add_argument("--episodes", type=int, default=20, help="evaluation starts per round's policy (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the run and of the evaluation starts")
    add_mpc_options(p)
    add_dagger_options(p.add_argument_group("DAgger (sb3-mimic dagger's options)"))
    p.set_defaults(**DEFAULT_MPC, **DEFAULT_DAGGER)  # this benchmark's defaults: the best configuration measured
    p.add_argument("--keep", type=Path, default=None, metavar="DIR", help="keep the run and every round's policy in DIR")
    p.add_argument("--out", type=Path, default=None, help="Markdown report (default results/dagger_rounds_CLIP.md)")
    p.add_argument("--png", type=Path, default=None, help="plot (default results/dagger_rounds_CLIP.png)")
    p.add_argument("--json", type=Path, default=None, help="also write every figure as JSON")
    args = p.parse_args(argv)
    if min(args.rounds, args.steps_per_round, args.episodes) < 1:
        p.error("--rounds, --steps_per_round and --episodes must be at least 1")
    args.mpc, args.dagger = mpc_overrides(args), dagger_options(args)
    try:
        dagger_config(args).validate()
    except (TypeError, ValueError) as error:
        p.error(str(error))
    args.out = args.out or RESULTS / f"dagger_rounds_{Path(args.mocap).stem}.md"
    args.png = args.png or RESULTS / f"dagger_rounds_{Path(args.mocap).stem}.png"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    now = datetime.datetime.now().astimezone()
    header = report_header(
        f"DAgger round by round on {args.mocap}", now,
        f"DAgger from scratch with the MPC expert: {args.rounds} rounds x {args.steps_per_round} steps, seed "
        f"{args.seed}; MPC{describe(args.mpc)}; DAgger{describe(args.dagger)}. Each round's policy acts alone "
        f"from {args.episodes} reference-state starts.",
    )
    print("\n".join(header), flush=True)
    say = stopwatch_printer()
    with tempfile.TemporaryDirectory(prefix="sb3_mimic_dagger_rounds_") as tmp:
        folder = args.keep or Path(tmp)
        result = run(args, folder, say)
    rows, limit_s = result["rounds"], result["episode_limit_s"]
    last = rows[-1]
    checks = [
        (f"DAgger policy after the last round survives >= {SURVIVAL_TARGET_S:.0f} s on average over {args.episodes} "
         "starts", last["mean_survival_s"] >= SURVIVAL_TARGET_S, f"{last['mean_survival_s']:.2f} s"),
        ("expert + DAgger pipeline < 30 min", result["wall_s"] < PIPELINE_LIMIT_S, f"{result['wall_s'] / 60:.1f} min"),
    ]
    best = max(rows, key=lambda r: r["mean_survival_s"])
    report = [f"Load average at end {load_average()}. Pipeline wall time {result['wall_s'] / 60:.1f} min; best "
              f"round {best['round']} ({best['mean_survival_s']:.2f} s).", "", "Checks:", ""]
    report += [f"- {label}: {'PASS' if ok else 'FAIL'} ({fig})" for label, ok, fig in checks]
    report += ["", *markdown_table(rows, limit_s), "",
               "Beta is the expert's share while the round was collected; labels (episodes) are the round's own; "
               "mixed episode is their mean length; wall is the pipeline's time at the end of the round.",
               "", f"DAgger configuration as run (`dagger.json`): `{json.dumps(result['config'])}`",
               "", f"![dagger rounds]({args.png.name})"]
    print("\n" + "\n".join(report), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join([*header, "", *report]) + "\n")
    args.png.parent.mkdir(parents=True, exist_ok=True)
    plot(rows, limit_s, args.png, f"DAgger on {args.mocap}, {args.rounds} rounds x {args.steps_per_round} steps: "
                                  f"MPC{describe(args.mpc)}\nDAgger{describe(args.dagger)}")
    print(f"\nreport written to {args.out}, chart to {args.png}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"date": now.isoformat(timespec="seconds"), "machine": machine(), **result,
                                         "checks": [{"check": c, "pass": ok, "figures": f} for c, ok, f in checks]},
                                        indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
