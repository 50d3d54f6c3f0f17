"""SFT pipeline per clip: wall time, validation MSE, and the cloned policy against the PD expert and a zero action.

For each clip (default ``walk run dance_a backflip``):

1. **SFT**: ``run_sft`` (the ``sb3-mimic sft`` pipeline) with every argument at its default except ``mocap`` and
   ``save_path`` (a temporary folder, or ``--keep DIR``), with the pipeline's own evaluation off (``no_eval``) and
   no progress bars. Its wall time is ``time.perf_counter`` around the ``run_sft`` call (demonstrations, BC,
   saving). The best validation MSE and the untrained policy's are taken from its result.
2. **Evaluation** of three actors with the same seeded reference-state starts (``evaluate(..., seed=--seed)``,
   episode ``i`` starts from ``reset(seed=seed + i)``): (a) the zero action, (b) the PD expert alone
   (``make_expert("pd", env, lookahead=1)``), (c) the SFT policy as saved (``load_policy`` of the file written in
   step 1, deterministic actions). Reported: mean survival time (s), fall rate, normalised return, MPJPE (mm).

Three acceptance checks on ``walk`` (if it is among the clips) are printed with PASS/FAIL: SFT wall time < 120 s,
SFT survival >= PD expert survival (mean over the starts), and best val MSE <= untrained val MSE / 10.

Run from the repository root::

    .venv/bin/python benchmarks/sft.py                            # a few minutes (about 1 min per clip)
    .venv/bin/python benchmarks/sft.py --clips walk --episodes 5 --json benchmarks/results/sft.json

The exit status is 0 whatever the figures: this is a benchmark, not a test; PASS/FAIL lines are informative.
"""

from __future__ import annotations

import os

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"  # headless; no rendering happens here, but the envs import the GL backend

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout, installed or not
import sb3_mimic
from sb3_mimic.evaluation import evaluate, policy_actor
from sb3_mimic.experts import make_expert
from sb3_mimic.policies import load_policy
from sb3_mimic.sft import SFTConfig, run_sft

from _machine import load_average, machine

DEFAULT_CLIPS = ("walk", "run", "dance_a", "backflip")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "sft.md"
ACTORS = ("zero", "pd_expert", "sft")
WALL_LIMIT_S = 120.0
MSE_FACTOR = 10.0


def sft_clip(clip: str, folder: Path, log) -> dict:
    """Run the SFT pipeline on ``clip`` with default arguments; return its figures and the saved file."""
    config = SFTConfig(mocap=clip, save_path=str(folder / f"sft_{clip}.zip"), no_eval=True)
    start = time.perf_counter()
    run = run_sft(config, progress_bar=False, log=log)
    wall = time.perf_counter() - start
    threads = th.get_num_threads()  # as the pipeline left them (it may set its own)
    best, initial = run.result.best_val_loss, run.result.initial_val_loss
    return {
        "wall_s": wall,
        "val_mse_best": best,
        "val_mse_untrained": initial,
        "val_mse_ratio_untrained_over_best": initial / best if best > 0 else float("inf"),
        "best_epoch": run.result.best_epoch,
        "torch_threads_after": threads,
        "save_path": str(run.save_path),
        "env_id": run.env_id,
        "env_kwargs": run.env_kwargs,
    }


def evaluate_actors(sft: dict, episodes: int, seed: int) -> dict[str, dict]:
    """The zero action, the PD expert and the saved SFT policy over the same seeded starts."""
    env = gym.make(sft["env_id"], **sft["env_kwargs"])
    zero = np.zeros(env.action_space.shape, dtype=env.action_space.dtype)
    actors = {
        "zero": lambda obs: zero,
        "pd_expert": policy_actor(make_expert("pd", env, lookahead=1)),
        "sft": policy_actor(load_policy(sft["save_path"], env=env)),
    }
    figures = {}
    for name in ACTORS:
        start = time.perf_counter()
        result = evaluate(actors[name], env, episodes=episodes, seed=seed)
        figures[name] = {**result.to_dict(), "eval_wall_s": time.perf_counter() - start}
    env.close()
    return figures


def checks_for(clip: str, entry: dict, episodes: int) -> list[tuple[str, bool, str]]:
    """(label, passed, figures) of the acceptance checks on one clip."""
    sft, ev = entry["sft"], entry["eval"]
    s_sft, s_pd = ev["sft"]["mean_survival_s"], ev["pd_expert"]["mean_survival_s"]
    best, untrained = sft["val_mse_best"], sft["val_mse_untrained"]
    return [
        (f"{clip}: sft wall time < {WALL_LIMIT_S:.0f} s", sft["wall_s"] < WALL_LIMIT_S, f"{sft['wall_s']:.1f} s"),
        (
            f"{clip}: SFT survival >= PD expert survival (mean over {episodes} starts)",
            s_sft >= s_pd,
            f"{s_sft:.2f} s vs {s_pd:.2f} s",
        ),
        (
            f"{clip}: val MSE trained <= untrained/{MSE_FACTOR:g}",
            best <= untrained / MSE_FACTOR,
            f"{best:.6f} vs {untrained:.6f}/{MSE_FACTOR:g} = {untrained / MSE_FACTOR:.6f}",
        ),
    ]


def markdown_table(results: dict[str, dict]) -> list[str]:
    head = (
        "| clip | actor | survival (s) | fall rate | norm. return | MPJPE (mm) "
        "| SFT wall (s) | val MSE best | val MSE untrained | untrained/best |"
    )
    lines = [head, "|" + "|".join(["---"] * 2 + ["---:"] * 8) + "|"]
    for clip, entry in results.items():
        sft = entry["sft"]
        for name in ACTORS:
            e = entry["eval"][name]
            row = [
                clip, name, f"{e['mean_survival_s']:.2f}", f"{e['fall_rate']:.2f}", f"{e['normalized_return']:.3f}",
                f"{e['mpjpe_mm']:.1f}",
            ]
            if name == "sft":
                row += [
                    f"{sft['wall_s']:.1f}", f"{sft['val_mse_best']:.6f}", f"{sft['val_mse_untrained']:.6f}",
                    f"{sft['val_mse_ratio_untrained_over_best']:.1f}",
                ]
            else:
                row += [""] * 4
            lines.append("| " + " | ".join(row) + " |")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=list(DEFAULT_CLIPS), metavar="CLIP",
                        help=f"clips to run (default: {' '.join(DEFAULT_CLIPS)})")
    parser.add_argument("--episodes", type=int, default=20, help="evaluation starts per actor (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation starts, the same for all actors")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="save the SFT policies in DIR (default: a temporary folder, removed at the end)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="PATH",
                        help="Markdown report (default benchmarks/results/sft.md)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    now = datetime.datetime.now().astimezone()
    load_start = load_average()
    threads_start = th.get_num_threads()
    header = [
        f"# SFT benchmark ({now:%Y-%m-%d %H:%M %Z})",
        "",
        f"Machine: {machine()}; torch threads at start {threads_start}.",
        f"SFT: default `sb3-mimic sft` arguments (no eval); evaluation: {args.episodes} reference-state starts, "
        f"seed {args.seed}, the same for every actor.",
        f"Load average at start: {load_start} (other processes slow the wall time down).",
    ]
    print("\n".join(header), flush=True)

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="sb3_mimic_sft_bench_") as tmp:
        folder = args.keep if args.keep is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for clip in args.clips:
            print(f"\n[{clip}]", flush=True)
            sft = sft_clip(clip, folder, log=lambda line: print(f"  {line}", flush=True))
            print(f"  SFT wall time {sft['wall_s']:.1f} s; evaluating 3 actors x {args.episodes} episodes", flush=True)
            results[clip] = {"sft": sft, "eval": evaluate_actors(sft, args.episodes, args.seed)}
            if args.keep is None:
                results[clip]["sft"]["save_path"] = None  # removed with the temporary folder

    checks = checks_for("walk", results["walk"], args.episodes) if "walk" in results else []
    load_end = load_average()
    threads_sft = sorted({entry["sft"]["torch_threads_after"] for entry in results.values()})
    report = [f"Load average at end: {load_end}; torch threads after run_sft: {threads_sft}.", ""]
    if checks:
        report += ["Acceptance checks (walk):", ""]
        report += [f"- {label}: {'PASS' if ok else 'FAIL'} ({figures})" for label, ok, figures in checks]
        report.append("")
    report += markdown_table(results)
    print("\n" + "\n".join(report))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join([*header, "", *report]) + "\n")
    print(f"\nreport written to {args.out}")
    if args.json is not None:
        figures = {
            "date": now.isoformat(timespec="seconds"),
            "machine": {
                "cpu_count": os.cpu_count(),
                "torch_threads_start": threads_start,
                "torch_threads_after_sft": threads_sft,
                "processor": platform.processor() or platform.machine(),
                "load_average_start": load_start,
                "load_average_end": load_end,
            },
            "versions": {
                "python": platform.python_version(),
                "torch": th.__version__,
                "gymnasium": gym.__version__,
                "sb3_mimic": sb3_mimic.__version__,
            },
            "episodes": args.episodes,
            "seed": args.seed,
            "clips": results,
            "checks": [{"check": label, "pass": ok, "figures": figures} for label, ok, figures in checks],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
