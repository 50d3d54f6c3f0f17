"""Ship a trained policy inside the package: ``sb3_mimic/pretrained/NAME.zip`` with its evaluation ``NAME.json``.

    python tools/ship_policy.py RUN_DIR/checkpoints/model_..._steps.zip walk [--run_dir RUN_DIR] [--episodes 20]

The policy is read as JSON and tensors only (``load_policy``), re-saved as a TRPO policy file (the PPO optimiser
state stays behind), and evaluated over ``--episodes`` seeded reference-state starts (seeds 1000, 1001, ...: the
``eval`` command's defaults with ``--seed 1000``).  The JSON records those figures, the per-episode survival, the
source file and, with ``--run_dir``, the run's configuration and the training wall time and env steps of the
checkpoint.  ``sb3-mimic eval --model pretrained:NAME --seed 1000 --eval_episodes 20`` reproduces the figures.

After a change to the env that moves its figures, measure a shipped policy again in place (its source kept, the
previous figures and the reason recorded)::

    python tools/ship_policy.py --remeasure walk --why "random starts now lie on the physics grid"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

#: The seed of the first evaluation episode of a shipped policy's figures.
EVAL_SEED = 1000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("policy", nargs="?", help="policy or checkpoint .zip written by sb3-mimic")
    p.add_argument("name", nargs="?", help="name to ship it under (pretrained:NAME)")
    p.add_argument("--run_dir", help="the run that trained it (its run.json and evaluations.csv are recorded)")
    p.add_argument("--episodes", type=int, default=20, help="evaluation episodes")
    p.add_argument("--remeasure", metavar="NAME", help="evaluate the shipped NAME again, keeping its source")
    p.add_argument("--why", help="with --remeasure: why its figures are measured again (recorded)")
    args = p.parse_args(argv)
    if args.remeasure:
        if args.policy or args.run_dir or not args.why:
            p.error("--remeasure NAME takes --why REASON (and --episodes), no policy, name or --run_dir")
    elif not (args.policy and args.name):
        p.error("give POLICY NAME, or --remeasure NAME --why REASON")

    import gymnasium as gym
    import torch as th

    from sb3_mimic._resources import PRETRAINED_DIR
    from sb3_mimic.evaluation import evaluate, policy_actor
    from sb3_mimic.policies import load_policy, metadata_of, save_policy

    th.set_num_threads(1)
    previous = None
    if args.remeasure:
        args.name, args.policy = args.remeasure, str(PRETRAINED_DIR / f"{args.remeasure}.zip")
        previous = json.loads((PRETRAINED_DIR / f"{args.remeasure}.json").read_text())
    model = load_policy(args.policy)
    meta = metadata_of(model)
    env = gym.make(meta.env_id, **meta.env_kwargs)
    survival: list[float] = []
    steps = [0]

    def on_step(obs, action, reward, next_obs, terminated, truncated, info) -> None:
        steps[0] += 1
        if terminated or truncated:
            survival.append(round(steps[0] * env.unwrapped.dt, 4))
            steps[0] = 0

    result = evaluate(policy_actor(model), env, args.episodes, seed=EVAL_SEED, progress_bar=True, on_step=on_step)
    limit = env.spec.max_episode_steps * env.unwrapped.dt
    env.close()
    details = dict(meta.details)
    source = {"file": str(Path(args.policy).name)}
    if args.run_dir:
        run_dir = Path(args.run_dir)
        source["run_config"] = json.loads((run_dir / "run.json").read_text())
        steps = int(Path(args.policy).stem.split("_")[1]) if Path(args.policy).stem.startswith("model_") else None
        if steps is not None:
            from sb3_mimic.rl import read_evaluations

            row = next((r for r in read_evaluations(run_dir) if int(r["env_steps"]) == steps), None)
            source["env_steps"] = steps
            if row is not None:
                source["training_wall_time_s"] = row["wall_time_s"]
    if previous is not None:
        import datetime

        source = previous["source"]
        source.setdefault("remeasured", []).append({
            "date": datetime.date.today().isoformat(), "why": args.why,
            "previous_evaluation": {k: v for k, v in previous["evaluation"].items() if k != "survival_s"},
        })
    details["shipped_as"] = f"pretrained:{args.name}"
    PRETRAINED_DIR.mkdir(exist_ok=True)
    path = save_policy(model, PRETRAINED_DIR / f"{args.name}.zip", meta.replace(details=details))
    record = {
        "name": args.name,
        "clip": meta.clip,
        "env_id": meta.env_id,
        "env_kwargs": meta.env_kwargs,
        "evaluation": {"episodes": args.episodes, "seed": EVAL_SEED, **result.to_dict(),
                       "survival_s": survival, "full_length_share": sum(s >= limit - 1e-6 for s in survival) / len(survival)},
        "source": source,
        "reproduce": f"sb3-mimic eval --model pretrained:{args.name} --seed {EVAL_SEED} --eval_episodes {args.episodes}",
    }
    path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(result.format_block())
    print(f"shipped {path} ({path.stat().st_size / 1e6:.2f} MB) and {path.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
