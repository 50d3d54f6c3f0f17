"""SFT + fine-tuning against pure RL on one clip, at the same env-step budget, on the batched env.

The contenders run one after another in one invocation, each with the whole machine, each an ordinary
``sb3-mimic`` command (so the figures are what a user gets), all with the measured recipe: residual actions around
the reference pose, observations normalised inside the network, 2 x 256, 32 characters x 128 steps per iteration,
minibatches of 1024, discount and GAE lambda 0.95:

1. ``trpo``: pure TRPO from scratch (TRPO's defaults otherwise);
2. ``ppo``: pure PPO from scratch, learning rate 5e-5, 5 epochs (the PPO settings of the shipped walk policy's
   fine-tuning);
3. ``sft_pd``: SFT from the PD expert (``sft --expert pd``), then fine-tuning (``finetune --algo FT_ALGO``, critic
   warm-up and the annealed imitation term);
4. ``sft_mpc``: SFT from the MPC expert with DART noise (``sft --expert mpc``), then the same fine-tuning.

Every run has the same ``--steps`` of RL (a fine-tuning run's critic warm-up counts) and is evaluated every
``--save_per_iter`` iterations over ``--eval_episodes`` seeded reference-state starts (the same starts for all).
Wall times are training time (evaluations excluded); an SFT contender's include its SFT command (expert labelling
and BC), measured here.  The report: a table at equal env steps and at equal wall time, env steps and wall time to
the first evaluation with a mean time to fall of 5, 10 and 20 s, the guide's three claims answered with these
figures, learning curves, and the single env's random-action steps/s with the raw physics bound of the same
simulated time (bare ``mj_step``), both measured in this run, beside each contender's training steps/s.

A contender whose run folder is already complete is not run again, so an interrupted benchmark continues where
it stopped (``--report_only`` writes the report from what is there).

    .venv/bin/python benchmarks/sft_vs_rl.py                               # walk, 3 M steps each (about 2 h)
    .venv/bin/python benchmarks/sft_vs_rl.py --steps 200000 --out /tmp/q   # a quick look
    .venv/bin/python benchmarks/sft_vs_rl.py --mocap run --contenders ppo sft_mpc
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym
import mujoco
import numpy as np

from _machine import report_header
from walk_recipe import THRESHOLDS_S, first_reaching, read_rows

import sb3_mimic  # noqa: F401  (registers the env ids)

CONTENDERS = ("trpo", "ppo", "sft_pd", "sft_mpc")
LABELS = {"trpo": "pure TRPO", "ppo": "pure PPO", "sft_pd": "SFT (PD) + {ft}", "sft_mpc": "SFT (MPC, DART) + {ft}"}
RECIPE = ["--action_mode", "residual", "--normalize", "--hidden_size", "256", "--num_layers", "2"]
BATCH = ["--vec_env", "batched", "--n_envs", "32", "--n_steps", "128", "--batch_size", "1024",
         "--gamma", "0.95", "--gae_lambda", "0.95"]
PPO = ["--n_epochs", "5", "--learning_rate", "5e-5"]
#: Env steps of one rollout (32 characters x 128 steps): a run ends at the first whole rollout past its budget.
ROLLOUT = 32 * 128


def sb3_mimic_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sb3_mimic", *args]


def commands(name: str, args: argparse.Namespace, out: Path) -> list[tuple[str, list[str]]]:
    """The (phase, argv) commands of contender ``name``: an SFT phase (if any), then the RL phase."""
    rl = ["--num_timesteps", str(args.steps), "--save_per_iter", str(args.save_per_iter), "--eval_episodes",
          str(args.eval_episodes), "--seed", str(args.seed), "--run_dir", str(out / name), "--no_progress", *BATCH]
    if name in ("trpo", "ppo"):
        return [("rl", sb3_mimic_command("train", "--algo", name, "--mocap", args.mocap, *RECIPE, *rl,
                                         *(PPO if name == "ppo" else [])))]
    expert = name.removeprefix("sft_")
    sft_zip = out / f"{name}.zip"
    sft = sb3_mimic_command("sft", "--mocap", args.mocap, "--expert", expert, *RECIPE, "--epochs",
                            str(args.sft_epochs), "--seed", str(args.seed), "--save_path", str(sft_zip), "--no_eval",
                            "--no_progress", *(["--n_rollouts", str(args.mpc_rollouts)] if expert == "mpc" else []))
    finetune = sb3_mimic_command("finetune", "--algo", args.ft_algo, "--load_sft_pretrain", str(sft_zip), *rl,
                                 *(PPO if args.ft_algo == "ppo" else []))
    return [("sft", sft), ("rl", finetune)]


def run_contender(name: str, args: argparse.Namespace, out: Path) -> None:
    """Run contender ``name`` unless its run folder is complete; an SFT phase's wall time goes to NAME.sft.json."""
    run_dir = out / name
    if (run_dir / "final_model.zip").exists():
        print(f"== {name}: complete in {run_dir}, not run again", flush=True)
        return
    for phase, argv in commands(name, args, out):
        timing = out / f"{name}.sft.json"
        if phase == "sft" and timing.exists():
            continue
        if phase == "rl" and (run_dir / "run.json").exists():
            recorded = json.loads((run_dir / "run.json").read_text())["num_timesteps"]
            if recorded != args.steps:
                raise SystemExit(f"{run_dir} was started with --steps {recorded}, not {args.steps}: rerun with "
                                 f"--steps {recorded}, or choose another --out")
            if any((run_dir / "checkpoints").glob("*.zip")):
                argv = [*argv[:4], "--resume", str(run_dir), "--no_progress"]  # train|finetune --resume RUN_DIR
            else:  # killed before its first checkpoint: nothing to resume, start it again
                shutil.rmtree(run_dir)
        print(f"== {name} ({phase}): {' '.join(argv[2:])}", flush=True)
        start = time.perf_counter()
        with (out / f"{name}.{phase}.log").open("a") as log:
            code = subprocess.call(argv, stdout=log, stderr=subprocess.STDOUT)
        if code != 0:
            raise SystemExit(f"{name} ({phase}) failed with exit code {code}; see {out}/{name}.{phase}.log")
        if phase == "sft":
            timing.write_text(json.dumps({"sft_wall_s": time.perf_counter() - start}))


def env_and_physics_rates(mocap: str, seconds: float = 5.0) -> tuple[float, float]:
    """Steps/s of the single env with random actions, and of bare ``mj_step`` for the same simulated time per step
    (the raw physics bound), one thread each, measured back to back."""
    env = gym.make("MimicHumanoid-v0", motion=mocap)
    actions = np.random.default_rng(0).uniform(-1, 1, (4096, env.action_space.shape[0])).astype(np.float32)
    env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(actions[steps % len(actions)])
        steps += 1
        if terminated or truncated:
            env.reset()
    env_rate = steps / (time.perf_counter() - start)
    model, data = env.unwrapped.model, mujoco.MjData(env.unwrapped.model)
    skip = env.unwrapped.frame_skip
    mujoco.mj_forward(model, data)
    physics, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        mujoco.mj_step(model, data, nstep=skip)
        physics += 1
        if physics % 600 == 0:
            mujoco.mj_resetData(model, data)
    env.close()
    return env_rate, physics / (time.perf_counter() - start)


def at(rows: list[dict[str, float]], key: str, value: float, slack: float = 0.0) -> dict[str, float] | None:
    """The last evaluation with ``rows[key] <= value``; None if the run stopped short of ``value - slack`` (an
    unfinished contender shows no figures where it has not been)."""
    if not rows or rows[-1][key] < value - slack - 1e-9:
        return None
    before = [r for r in rows if r[key] <= value + 1e-9]
    return before[-1] if before else None


def cell(row: dict[str, float] | None) -> str:
    if row is None:
        return "-"
    return f"{row['mean_survival_s']:.2f} s / {row['normalized_return']:.3f} / {row['mpjpe_mm']:.0f} mm"


def first(rows: list[dict[str, float]], seconds: float) -> dict[str, float] | None:
    return next((r for r in rows if r["mean_survival_s"] >= seconds - 1e-9), None)


def claims(results: dict[str, dict], label: dict[str, str]) -> list[str]:
    """The guide's three claims, each answered with this run's figures (or why it cannot be)."""
    lines = ["## The guide's claims, with these figures", ""]
    rl = [n for n in ("ppo", "trpo") if n in results]
    sft = [n for n in ("sft_mpc", "sft_pd") if n in results]
    if not rl or not sft:
        return [*lines, "Needs a pure-RL and an SFT contender.", ""]
    best_rl = max(rl, key=lambda n: max(r["normalized_return"] for r in results[n]["rows"]))
    rl_rows = results[best_rl]["rows"]
    rl_best = max(rl_rows, key=lambda r: r["normalized_return"])
    for name in sft:
        res = results[name]
        clone = res["rows"][0]  # the fine-tuning run's first evaluation: the SFT policy itself
        share = clone["normalized_return"] / max(rl_best["normalized_return"], 1e-9)
        time_share = res["sft_wall_s"] / max(rl_best["wall_time_s"], 1e-9)
        lines.append(
            f"- \"SFT gives 80 % of the quality in 5 % of the time\" ({label[name].split(' +')[0]}): the SFT policy "
            f"alone has {share:.0%} of the best normalised return {label[best_rl]} reached "
            f"({clone['normalized_return']:.3f} against {rl_best['normalized_return']:.3f}, time to fall "
            f"{clone['mean_survival_s']:.2f} s against {rl_best['mean_survival_s']:.2f} s) in {time_share:.0%} of "
            f"the time ({res['sft_wall_s'] / 60:.1f} min against {rl_best['wall_time_s'] / 60:.1f} min).")
    for seconds in sorted(THRESHOLDS_S, reverse=True):
        reached = {n: first(results[n]["rows"], seconds) for n in (*rl, *sft)}
        if reached[best_rl] is None or not any(reached[n] for n in sft):
            continue
        for name in sft:
            row = reached[name]
            if row is None:
                lines.append(f"- At {seconds:g} s of time to fall: {label[best_rl]} got there, {label[name]} did not.")
                continue
            base = reached[best_rl]
            if row["env_steps"] == 0:
                lines.append(f"- At {seconds:g} s of time to fall: the SFT policy of {label[name]} got there before any "
                             f"RL, after {row['wall_time_s'] / 60:.1f} min of SFT; {label[best_rl]} after "
                             f"{base['wall_time_s'] / 60:.1f} min and {base['env_steps'] / 1e6:.2f} M env steps.")
                continue
            lines.append(
                f"- \"SFT + RL 3 h vs pure RL 48 h\" and \"10-20x faster\", at the first evaluation of {seconds:g} s: "
                f"{label[name]} after {row['wall_time_s'] / 60:.1f} min and {row['env_steps'] / 1e6:.2f} M env steps, "
                f"{label[best_rl]} after {base['wall_time_s'] / 60:.1f} min and {base['env_steps'] / 1e6:.2f} M: "
                f"{base['wall_time_s'] / max(row['wall_time_s'], 1e-9):.2f}x in wall time, "
                f"{base['env_steps'] / max(row['env_steps'], 1):.2f}x in env steps (the guide: 16x, 10-20x).")
        break
    else:
        lines.append("- No time-to-fall level (5, 10, 20 s) was reached by both the best pure-RL contender and an SFT "
                     "contender, so the speed-up claims cannot be measured at this budget.")
    return [*lines, ""]


def report(args: argparse.Namespace, out: Path, rates: tuple[float, float] | None) -> str:
    results = {}
    for name in args.contenders:
        if not (out / name / "evaluations.csv").exists():
            continue
        timing = out / f"{name}.sft.json"
        sft_wall = json.loads(timing.read_text())["sft_wall_s"] if timing.exists() else 0.0
        rows = read_rows(out / name)
        for row in rows:
            row["wall_time_s"] += sft_wall
        results[name] = {"rows": rows, "sft_wall_s": sft_wall}
    ft = args.ft_algo.upper()
    label = {n: LABELS[n].format(ft=ft) for n in results}
    lines = report_header(
        f"SFT + fine-tuning against pure RL on {args.mocap}, {args.steps / 1e6:g} M env steps each",
        datetime.datetime.now(datetime.UTC),
        "",
        f"Contenders one after another, each with the whole machine; recipe `{' '.join(RECIPE + BATCH)}`, PPO "
        f"`{' '.join(PPO)}`, fine-tuning with `{args.ft_algo}`; evaluations every {args.save_per_iter} iterations over "
        f"{args.eval_episodes} seeded reference-state starts (the same for all), deterministic actions. Cells: mean "
        "time to fall / normalised return / MPJPE. Wall times are training time (evaluations excluded), plus the SFT "
        "command for the SFT contenders (expert labelling and BC). One seed: a direction, not a result.",
        "",
    )
    if rates is not None:
        env_rate, physics = rates
        lines += [f"Single env, random actions: {env_rate:.0f} steps/s; raw physics bound (bare `mj_step`, same "
                  f"simulated time, one thread): {physics:.0f} steps/s; ratio {env_rate / physics:.2f} (measured "
                  "before the contenders).", ""]
    names = list(results)
    done = {n: results[n]["rows"][-1]["env_steps"] >= args.steps for n in names}  # unfinished: stopped early
    lines += ["## At equal env steps", "", "| env steps | " + " | ".join(label[n] for n in names) + " |",
              "|---|" + "---|" * len(names)]
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        steps = frac * args.steps
        slack = ROLLOUT if frac == 1.0 else 0  # the run's last evaluation, one rollout past the budget
        lines.append(f"| {steps / 1e6:.2f} M | " + " | ".join(cell(at(results[n]["rows"], "env_steps", steps + slack,
                                                                      slack=args.save_per_iter * ROLLOUT))
                                                            for n in names) + " |")
    longest = max((r["rows"][-1]["wall_time_s"] for r in results.values()), default=0.0)
    lines += ["", "## At equal wall time (SFT included)", "", "| wall time | " + " | ".join(label[n] for n in names)
              + " |", "|---|" + "---|" * len(names)]
    for frac in (0.25, 0.5, 0.75, 1.0):
        wall = frac * longest
        lines.append(f"| {wall / 60:.1f} min | " + " | ".join(
            cell(at(results[n]["rows"], "wall_time_s", wall, slack=math.inf if done[n] else 0.0)) for n in names) + " |")
    lines += ["", "## First evaluation with a mean time to fall of 5, 10 and 20 s (env steps / wall time)", "",
              "| contender | SFT | 5 s | 10 s | 20 s | best evaluation | training env steps/s |",
              "|---|---|---|---|---|---|---|"]
    for n in names:
        rows, sft_wall = results[n]["rows"], results[n]["sft_wall_s"]
        best = max(rows, key=lambda r: (r["mean_survival_s"], r["normalized_return"]))
        rate = rows[-1]["env_steps"] / max(rows[-1]["wall_time_s"] - sft_wall, 1e-9)
        reach = " | ".join(first_reaching(rows, s, 0.0) for s in THRESHOLDS_S)
        lines.append(f"| {label[n]} | {sft_wall / 60:.1f} min | {reach} | {cell(best)} at {best['env_steps'] / 1e6:.2f} M "
                     f"| {rate:.0f} |")
    lines += ["", *claims(results, label)]
    if names:
        from sb3_mimic.plotting import plot_learning_curves

        png = plot_learning_curves([out / n for n in names], out / "curves.png", labels=[label[n] for n in names],
                                   wall_offsets_s=[results[n]["sft_wall_s"] for n in names],
                                   title=f"{args.mocap}: pure RL against SFT + fine-tuning (wall time includes SFT)")
        lines += [f"![learning curves]({png.name})", ""]
    text = "\n".join(lines)
    (out / "sft_vs_rl.md").write_text(text)
    (out / "sft_vs_rl.json").write_text(json.dumps(
        {"mocap": args.mocap, "steps": args.steps, "ft_algo": args.ft_algo, "rates": rates, "results": results}, indent=1))
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mocap", default="walk", help="clip (default: walk)")
    p.add_argument("--steps", type=int, default=3_000_000, help="env steps of RL per contender (default: 3 M)")
    p.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    p.add_argument("--ft_algo", choices=["ppo", "trpo"], default="ppo", help="fine-tuning algorithm (default: ppo)")
    p.add_argument("--save_per_iter", type=int, default=10, help="evaluate every K iterations (default: 10)")
    p.add_argument("--eval_episodes", type=int, default=20, help="starts per evaluation (default: 20)")
    p.add_argument("--sft_epochs", type=int, default=50, help="BC epochs of the SFT contenders (default: 50)")
    p.add_argument("--mpc_rollouts", type=int, default=20, help="MPC DART episodes of sft_mpc (default: 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/sft_vs_rl", help="output folder (runs, logs, report)")
    p.add_argument("--report_only", action="store_true", help="write the report from the runs already there")
    args = p.parse_args(argv)
    if args.steps < 1 or args.save_per_iter < 1 or args.eval_episodes < 1:
        p.error("--steps, --save_per_iter and --eval_episodes must be at least 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rates_file = out / "rates.json"
    if not args.report_only:
        rates = env_and_physics_rates(args.mocap)
        rates_file.write_text(json.dumps(rates))
        print(f"single env {rates[0]:.0f} steps/s, raw physics bound {rates[1]:.0f} steps/s", flush=True)
        for name in args.contenders:
            run_contender(name, args, out)
            print(report(args, out, rates).split("## The guide")[0], flush=True)
    rates = tuple(json.loads(rates_file.read_text())) if rates_file.exists() else None
    print(report(args, out, rates))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
