"""Experts and what supervised learning makes of them: PD vs MPC, and BC / DAgger policies distilled from them.

For each clip (default ``walk run dance_a backflip``), in one run:

1. **PD expert** (``make_expert("pd", env, lookahead=1)``) and **MPC expert** (``make_expert("mpc", env)`` with
   the clip's settings, ``MPCSettings.for_clip``: the defaults unless the catalogue sets others; the command
   line's ``--mpc_*`` options override them, for the DAgger step too) act alone from
   ``--expert_starts`` seeded reference-state starts (``evaluate(..., seed=--seed)``; episode ``i`` starts from
   ``reset(seed=seed + i)``) up to the registered 20 s limit. Reported: mean survival,
   how many starts stayed up the whole 20 s, normalised return, MPJPE, and the labelling cost (wall ms per
   expert call, measured around each call).
2. **BC on PD labels**: the ``sb3-mimic sft`` pipeline with default arguments (``run_sft``).
3. **BC on MPC labels**: the same pipeline (``run_sft`` with ``demos=``) on the MPC expert's own closed-loop
   episodes from step 1, saved as a demonstration file; its wall time counts the MPC's labelling time.
4. **DAgger on MPC labels**: ``run_dagger`` (the ``sb3-mimic dagger --expert mpc`` pipeline) with
   ``--dagger_rounds`` x ``--dagger_steps``, from scratch (``sb3-mimic dagger``'s own options set its other
   arguments, e.g. ``--mixing blend --beta_rampdown 8``); its wall time includes the expert's labelling.

The three policies are evaluated deterministically over ``--episodes`` starts (same seed as the experts).
Acceptance checks of the MPC issue are printed with PASS/FAIL; the exit status is 0 whatever the figures.

Run from the repository root::

    .venv/bin/python benchmarks/experts.py                     # about 1.5-2 hours on 2 cores
    .venv/bin/python benchmarks/experts.py --clips walk --json benchmarks/results/experts.json
    .venv/bin/python benchmarks/experts.py --clips walk --mpc_stateless --mpc_iterations 3   # other MPC settings
    .venv/bin/python benchmarks/experts.py --clips walk --mpc_stateless --mpc_iterations 3 --mpc_ensemble 4 \
        --mixing blend --beta_rampdown 8 --epochs_per_round 30 --hidden_size 256      # other DAgger arguments
"""

from __future__ import annotations

import os

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"  # headless; nothing is rendered, but the envs import the GL backend

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout, installed or not
from sb3_mimic.dagger import DAggerConfig, run_dagger
from sb3_mimic.demos import DemoMetadata, save_demos
from sb3_mimic.evaluation import evaluate, policy_actor
from sb3_mimic.cli import add_dagger_options, add_mpc_options, dagger_options, mpc_overrides
from sb3_mimic.experts import make_expert
from sb3_mimic.policies import load_policy
from sb3_mimic.registration import env_spec_for
from sb3_mimic.sft import SFTConfig, run_sft

from _machine import describe, report_header, stopwatch_printer
from imitation.data.types import Transitions

DEFAULT_CLIPS = ("walk", "run", "dance_a", "backflip")
RESULTS = Path(__file__).resolve().parent / "results"
ACTORS = ("pd_expert", "mpc_expert", "bc_pd", "bc_mpc", "dagger_mpc")
LABELS = {"pd_expert": "PD expert", "mpc_expert": "MPC expert", "bc_pd": "BC on PD labels",
          "bc_mpc": "BC on MPC labels", "dagger_mpc": "DAgger on MPC labels"}
MPC_MS_LIMIT = 50.0
PIPELINE_LIMIT_S = 30 * 60.0


class Timed:
    """Wraps an expert's action function: keeps its wall time per call and, optionally, its labelled steps."""

    def __init__(self, expert, record: bool = False) -> None:
        self.act, self.seconds, self.calls = policy_actor(expert), 0.0, 0
        self.steps: list[tuple] | None = [] if record else None

    def __call__(self, obs):
        start = time.perf_counter()
        action = self.act(obs)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return action

    def on_step(self, obs, action, reward, next_obs, terminated, truncated, info) -> None:
        if self.steps is not None:
            self.steps.append((obs, action, next_obs, terminated or truncated))

    def transitions(self) -> Transitions:
        obs, acts, next_obs, dones = (np.asarray(x) for x in zip(*self.steps, strict=True))
        return Transitions(obs=obs.astype(np.float32), acts=acts.astype(np.float32), infos=np.array([{}] * len(obs)),
                           next_obs=next_obs.astype(np.float32), dones=dones.astype(bool))


def run_expert(env, expert, starts: int, seed: int, record: bool = False) -> tuple[dict, Timed]:
    timed = Timed(expert, record)
    start = time.perf_counter()
    result = evaluate(timed, env, episodes=starts, seed=seed, on_step=timed.on_step).to_dict()
    result["wall_s"] = time.perf_counter() - start
    result["ms_per_label"] = 1000.0 * timed.seconds / max(1, timed.calls)
    result["labels"] = timed.calls
    result["full_length"] = starts - round(result["fall_rate"] * starts)
    return result, timed


def evaluate_policy(path: Path, env, episodes: int, seed: int) -> dict:
    return evaluate(policy_actor(load_policy(path, env=env)), env, episodes=episodes, seed=seed).to_dict()


def dagger_config(clip: str, args) -> DAggerConfig:
    """The DAgger step's configuration (``--dagger_rounds``, ``--dagger_steps``, ``--seed``, ``--mpc``, ``--dagger``)."""
    return DAggerConfig(mocap=clip, expert="mpc", rounds=max(1, args.dagger_rounds), steps_per_round=args.dagger_steps,
                        seed=args.seed, mpc_kwargs=dict(args.mpc), **args.dagger)


def bench_clip(clip: str, args, folder: Path, say) -> dict:
    env_id, env_kwargs = env_spec_for(clip)
    env = gym.make(env_id, **env_kwargs)
    out: dict[str, dict] = {}

    say(f"PD expert alone, {args.expert_starts} starts")
    out["pd_expert"], _ = run_expert(env, make_expert("pd", env, lookahead=1), args.expert_starts, args.seed)
    say(f"MPC expert alone, {args.expert_starts} starts")
    mpc = make_expert("mpc", env, seed=args.seed, **args.mpc)
    out["mpc_expert"], timed = run_expert(env, mpc, args.expert_starts, args.seed, record=True)
    out["mpc_expert"]["settings"] = mpc.settings.to_dict()
    mpc.close()
    say(f"  MPC: {out['mpc_expert']['full_length']}/{args.expert_starts} starts up 20 s, "
        f"{out['mpc_expert']['ms_per_label']:.1f} ms per step")

    say("BC on PD labels (sft, default arguments)")
    start = time.perf_counter()
    run_sft(SFTConfig(mocap=clip, save_path=str(folder / f"bc_pd_{clip}.zip"), no_eval=True), progress_bar=False,
            log=lambda line: None)
    wall_bc_pd = time.perf_counter() - start
    out["bc_pd"] = {**evaluate_policy(folder / f"bc_pd_{clip}.zip", env, args.episodes, args.seed),
                    "wall_s": wall_bc_pd}

    say(f"BC on MPC labels ({len(timed.steps)} labelled steps of the MPC's own episodes)")
    demos = save_demos(folder / f"mpc_{clip}.npz", timed.transitions(),
                       DemoMetadata(clip, env_id, "pd_target", 1, "rollouts", {"expert": "mpc", "seed": args.seed}))
    start = time.perf_counter()
    run_sft(SFTConfig(mocap=clip, demos=str(demos), save_path=str(folder / f"bc_mpc_{clip}.zip"), no_eval=True),
            progress_bar=False, log=lambda line: None)
    wall_bc_mpc = time.perf_counter() - start + out["mpc_expert"]["wall_s"]
    out["bc_mpc"] = {**evaluate_policy(folder / f"bc_mpc_{clip}.zip", env, args.episodes, args.seed),
                     "wall_s": wall_bc_mpc, "labels": len(timed.steps)}

    if args.dagger_rounds:
        say(f"DAgger on MPC labels ({args.dagger_rounds} rounds x {args.dagger_steps} steps)")
        config = dagger_config(clip, args)
        start = time.perf_counter()
        run_dagger(config, folder / f"dagger_{clip}", log=lambda line: say(f"  {line}"))
        wall = time.perf_counter() - start
        out["dagger_mpc"] = {**evaluate_policy(folder / f"dagger_{clip}" / "policy.zip", env, args.episodes,
                                               args.seed), "wall_s": wall}
    env.close()
    return out


def checks_for(results: dict, args) -> list[tuple[str, bool, str]]:
    checks = []
    n = args.expert_starts
    for clip, entry in results.items():
        mpc = entry["mpc_expert"]
        need = n * 9 // 10 if clip == "walk" else (n + 1) // 2
        checks.append((f"{clip}: MPC keeps >= {need}/{n} starts up 20 s", mpc["full_length"] >= need,
                       f"{mpc['full_length']}/{n}, mean {mpc['mean_survival_s']:.2f} s"))
        if clip == "walk":
            checks.append((f"walk: MPC <= {MPC_MS_LIMIT:.0f} ms per control step", mpc["ms_per_label"] <= MPC_MS_LIMIT,
                           f"{mpc['ms_per_label']:.1f} ms"))
            if "dagger_mpc" in entry:
                d = entry["dagger_mpc"]
                checks.append((f"walk: DAgger policy mean survival >= 15 s over {args.episodes} starts",
                               d["mean_survival_s"] >= 15.0, f"{d['mean_survival_s']:.2f} s"))
                checks.append(("walk: expert + DAgger pipeline < 30 min", d["wall_s"] < PIPELINE_LIMIT_S,
                               f"{d['wall_s'] / 60:.1f} min"))
    return checks


def markdown_table(results: dict) -> list[str]:
    lines = ["| clip | actor | survival (s) | up 20 s | norm. return | MPJPE (mm) | ms per label | wall (s) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for clip, entry in results.items():
        for name in ACTORS:
            if name not in entry:
                continue
            e = entry[name]
            up = f"{e['episodes'] - round(e['fall_rate'] * e['episodes'])}/{e['episodes']}"
            ms = f"{e['ms_per_label']:.2f}" if "ms_per_label" in e else ""
            lines.append(f"| {clip} | {LABELS[name]} | {e['mean_survival_s']:.2f} | {up} | {e['normalized_return']:.3f} "
                         f"| {e['mpjpe_mm']:.0f} | {ms} | {e['wall_s']:.0f} |")
    return lines


def plot(results: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    clips = list(results)
    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    width = 0.8 / len(ACTORS)
    for panel, (key, title) in enumerate((("mean_survival_s", "mean survival (s), 20 s limit"),
                                          ("normalized_return", "normalised return per step"))):
        ax = fig.add_subplot(1, 2, panel + 1)
        for i, name in enumerate(ACTORS):
            values = [results[c][name][key] if name in results[c] else np.nan for c in clips]
            ax.bar(np.arange(len(clips)) + (i - (len(ACTORS) - 1) / 2) * width, values, width, label=LABELS[name])
        ax.set_xticks(np.arange(len(clips)), clips)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(ACTORS), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))  # room for the legend below the panels
    fig.savefig(path, dpi=110)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", nargs="+", default=list(DEFAULT_CLIPS), metavar="CLIP")
    p.add_argument("--expert_starts", type=int, default=10, help="starts per expert (default 10)")
    p.add_argument("--episodes", type=int, default=20, help="evaluation starts per policy (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the starts, the expert and the training")
    p.add_argument("--dagger_rounds", type=int, default=8, help="DAgger rounds (default 8; 0: skip DAgger)")
    p.add_argument("--dagger_steps", type=int, default=2500, help="labelled steps per round (default 2500)")
    add_mpc_options(p)  # sb3-mimic's --mpc_* options, for every clip
    add_dagger_options(p.add_argument_group("the DAgger step (sb3-mimic dagger's options)"))
    p.add_argument("--keep", type=Path, default=None, metavar="DIR", help="keep policies, demos and runs in DIR")
    p.add_argument("--out", type=Path, default=RESULTS / "experts.md", help="Markdown report")
    p.add_argument("--png", type=Path, default=RESULTS / "experts.png", help="bar chart")
    p.add_argument("--json", type=Path, default=None, help="also write every figure as JSON")
    args = p.parse_args(argv)
    args.mpc, args.dagger = mpc_overrides(args), dagger_options(args)
    if min(args.expert_starts, args.episodes) < 1 or args.dagger_rounds < 0 or args.dagger_steps < 1:
        p.error("--expert_starts, --episodes and --dagger_steps must be at least 1, --dagger_rounds at least 0")
    for clip in args.clips:  # the DAgger step's configuration as bench_clip builds it: fail now, not after an hour
        try:
            dagger_config(clip, args).validate()
        except (TypeError, ValueError) as error:
            p.error(f"{clip}: {error} (here --dagger_steps is --steps_per_round)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    now = datetime.datetime.now().astimezone()
    header = report_header(
        "Experts benchmark", now,
        f"Experts: {args.expert_starts} reference-state starts; policies: {args.episodes}; seed {args.seed}; DAgger "
        f"{args.dagger_rounds} rounds x {args.dagger_steps} steps{describe(args.dagger)}. Wall times include labelling "
        "by the expert.",
    )
    print("\n".join(header), flush=True)
    say = stopwatch_printer()
    results = {}
    with tempfile.TemporaryDirectory(prefix="sb3_mimic_experts_") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for clip in args.clips:
            print(f"\n[{clip}]", flush=True)
            results[clip] = bench_clip(clip, args, folder, say)
            print("\n".join(markdown_table({clip: results[clip]})), flush=True)
    checks = checks_for(results, args)
    report = ["Checks:", ""] + [f"- {label}: {'PASS' if ok else 'FAIL'} ({fig})" for label, ok, fig in checks]
    report += ["", *markdown_table(results), "", "MPC settings (`MPCSettings.for_clip`: defaults and the clip's "
               "catalogue entry" + (f"; `--mpc_*` overrides{describe(args.mpc)}" if args.mpc else "") + "):", ""]
    report += [f"- {clip}: " + ", ".join(f"{k} {v}" for k, v in entry["mpc_expert"]["settings"].items())
               for clip, entry in results.items()]
    report += ["", f"![experts]({args.png.name})"]
    print("\n" + "\n".join(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join([*header, "", *report]) + "\n")
    args.png.parent.mkdir(parents=True, exist_ok=True)
    plot(results, args.png)
    print(f"\nreport written to {args.out}, chart to {args.png}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"date": now.isoformat(timespec="seconds"), "args": {
            k: str(v) for k, v in vars(args).items()}, "clips": results,
            "checks": [{"check": c, "pass": ok, "figures": f} for c, ok, f in checks]}, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
