"""The walk recipe's contenders, read from their run folders: what each reached, after how many env steps and how
much wall time, as a Markdown table and learning curves.

Each contender is an ordinary ``sb3-mimic train`` / ``finetune`` run (its evaluations every ``--save_per_iter``
iterations over ``--eval_episodes`` seeded reference-state starts, in ``evaluations.csv``), run one after another
with the whole machine; ``--contender LABEL=RUN_DIR[+SFT_SECONDS]`` names one, where ``SFT_SECONDS`` (the SFT or
labelling time before a fine-tuning run) is added to its wall times.  The commands of this session's contenders are
in ``benchmarks/results/walk_recipe.md``.

    .venv/bin/python benchmarks/walk_recipe.py --contender "PPO residual+norm=runs/ppo_walk" \\
        --contender "SFT(MPC)+TRPO=runs/ft_walk+900" --out benchmarks/results/walk_recipe

For each contender: env steps and wall time to the first evaluation with a mean time to fall of at least 5, 10 and
20 s (the target: 18 s mean, 90 % of starts up 20 s), the best evaluation, and the last; the env's raw-physics bound
is not measured here (training runs are hours; see ``env_throughput.py`` for the speed ratios).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

THRESHOLDS_S = (5.0, 10.0, 20.0)


def read_rows(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "evaluations.csv").open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def first_reaching(rows: list[dict[str, float]], seconds: float, offset_s: float) -> str:
    for row in rows:
        if row["mean_survival_s"] >= seconds - 1e-9:
            return f"{row['env_steps'] / 1e6:.2f} M / {(row['wall_time_s'] + offset_s) / 60:.0f} min"
    return "not reached"


def describe(label: str, run_dir: Path, offset_s: float) -> list[str]:
    rows = read_rows(run_dir)
    config = json.loads((run_dir / "run.json").read_text())
    best = max(rows, key=lambda r: (r["mean_survival_s"], r["normalized_return"]))
    last = rows[-1]

    def figures(row: dict[str, float]) -> str:
        return (f"{row['mean_survival_s']:.2f} s, return {row['normalized_return']:.3f}, MPJPE {row['mpjpe_mm']:.0f} mm "
                f"at {row['env_steps'] / 1e6:.2f} M / {(row['wall_time_s'] + offset_s) / 60:.0f} min")

    setup = (f"{config['algo'].upper()}, {config['env_kwargs'].get('action_mode', 'pd_target')}, "
             f"{config['num_layers']}x{config['hidden_size']}"
             + (", normalised" if config.get("normalize_observations") else "")
             + (", from SFT" if config.get("load_sft_pretrain") else ""))
    reach = " | ".join(first_reaching(rows, s, offset_s) for s in THRESHOLDS_S)
    return [f"| {label} | {setup} | {reach} | {figures(best)} | {figures(last)} |"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--contender", action="append", required=True, metavar="LABEL=RUN_DIR[+SFT_SECONDS]")
    p.add_argument("--out", default="benchmarks/results/walk_recipe", help="output stem (.md table, .png curves)")
    args = p.parse_args(argv)
    contenders = []
    for item in args.contender:
        label, _, where = item.partition("=")
        folder, _, offset = where.partition("+")
        contenders.append((label, Path(folder), float(offset or 0.0)))
    head = "| contender | setup | 5 s | 10 s | 20 s | best evaluation | last evaluation |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for label, folder, offset in contenders:
        lines += describe(label, folder, offset)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from sb3_mimic.plotting import plot_learning_curves

    plot_learning_curves([c[1] for c in contenders], out.with_suffix(".png"), labels=[c[0] for c in contenders],
                         wall_offsets_s=[c[2] for c in contenders])
    table = "\n".join(lines)
    out.with_suffix(".table.md").write_text(table + "\n")
    print(table)
    print(f"wrote {out.with_suffix('.table.md')} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
