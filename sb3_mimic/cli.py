"""The ``sb3-mimic`` command line.

``sb3-mimic sft`` keeps the argument names and defaults of the original ``train_sft.py`` guide;
``sb3-mimic eval`` evaluates a saved policy (or the PD expert) on a clip.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DESCRIPTION = """Teach DeepMimic's humanoid to imitate motion-capture clips in MuJoCo with Stable-Baselines3.

Clips are named as in DeepMimic (humanoid3d_walk or walk, ...) or given as a DeepMimic clip file path.
Run `sb3-mimic COMMAND --help` for a command's arguments."""


def _add_sft(sub) -> None:
    from sb3_mimic.sft import SFTConfig

    d = SFTConfig()
    p = sub.add_parser(
        "sft",
        help="supervised pretraining: PD-expert demonstrations, behaviour cloning into a TRPO policy, evaluation",
        description=(
            "Supervised pretraining (SFT). A PD expert that targets the mocap pose `lookahead` control steps ahead "
            "labels reference states sampled across the clip (teacher forcing, with small state noise) and its own "
            "closed-loop rollouts; imitation's BC trains the actor of an sb3-contrib TRPO MlpPolicy on them, keeping "
            "the weights with the lowest validation MSE; the result is saved as an SB3 TRPO .zip (or a .pth "
            "checkpoint) and evaluated."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--mocap", default=d.mocap, help="clip name (e.g. humanoid3d_walk, walk) or clip file path")
    p.add_argument("--epochs", type=int, default=d.epochs, help="passes over the demonstrations")
    p.add_argument("--batch_size", type=int, default=d.batch_size, help="BC batch size")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument("--lookahead", type=int, default=d.lookahead, help="control steps (1/30 s) the expert looks ahead")
    p.add_argument("--hidden_size", type=int, default=d.hidden_size, help="units per hidden layer (actor and critic)")
    p.add_argument("--num_layers", type=int, default=d.num_layers, help="hidden layers (actor and critic)")
    p.add_argument("--val_split", type=float, default=d.val_split, help="fraction of demonstrations kept for validation")
    p.add_argument("--save_path", default=d.save_path, help="output policy: SB3 .zip, or .pth for a torch checkpoint")
    p.add_argument("--eval_episodes", type=int, default=d.eval_episodes, help="evaluation episodes after training")
    p.add_argument("--no_eval", action="store_true", help="skip the evaluation")
    p.add_argument("--action_mode", choices=["pd_target", "torque"], default=d.action_mode, help="env action mode")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of demonstrations, training and evaluation")
    p.add_argument("--n_samples", type=int, default=d.n_samples, help="teacher-forced demonstrations")
    p.add_argument("--n_rollouts", type=int, default=d.n_rollouts, help="closed-loop expert episodes added to them")
    p.add_argument("--qpos_noise", type=float, default=d.qpos_noise, help="joint-angle noise of teacher forcing, rad")
    p.add_argument("--qvel_noise", type=float, default=d.qvel_noise, help="velocity noise of teacher forcing")
    p.add_argument("--no_progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_run_sft)


def _run_sft(args: argparse.Namespace) -> int:
    from sb3_mimic.sft import SFTConfig, run_sft

    fields = SFTConfig.__dataclass_fields__
    config = SFTConfig(**{k: v for k, v in vars(args).items() if k in fields})
    config.validate()
    run_sft(config, progress_bar=not args.no_progress)
    return 0


def _add_eval(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a saved policy, or the PD expert, on a clip",
        description=(
            "Run N deterministic episodes from seeded reference-state starts and print the mean, std, min and max "
            "return, the normalised return (0..1), the mean time to fall, the fall rate and the mean per-joint "
            "position error."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", help="policy file written by `sb3-mimic sft` (.zip or .pth) or any SB3 TRPO zip")
    who.add_argument("--expert", choices=["pd"], help="evaluate an expert instead of a policy")
    p.add_argument("--mocap", help="clip name or path (default: the clip the model was trained on)")
    p.add_argument("--action_mode", choices=["pd_target", "torque"], help="env action mode (default: the model's)")
    p.add_argument("--lookahead", type=int, default=1, help="expert lookahead, control steps (with --expert)")
    p.add_argument("--eval_episodes", type=int, default=10, help="number of episodes")
    p.add_argument("--seed", type=int, default=0, help="episode i starts from reset(seed=seed + i)")
    p.add_argument("--json", dest="json_out", help="also write the figures to this JSON file")
    p.set_defaults(func=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from sb3_mimic.evaluation import evaluate, policy_actor
    from sb3_mimic.sft import check_policy_fits, env_spec_for, load_policy, make_env_from_metadata

    if args.eval_episodes < 1:
        raise ValueError(f"--eval_episodes must be at least 1, got {args.eval_episodes}")
    if args.expert and not args.mocap:
        raise ValueError("--expert needs --mocap: the clip the expert tracks")
    if args.json_out:
        from sb3_mimic.sft import check_writable

        check_writable(args.json_out)
    model = None
    if args.model:
        model = load_policy(args.model)
        meta = getattr(model, "sb3_mimic", {}) or {}
    if args.mocap:
        mode = args.action_mode or (meta.get("action_mode", "pd_target") if model is not None else "pd_target")
        env_id, env_kwargs = env_spec_for(args.mocap, mode)
        env = gym.make(env_id, **env_kwargs)
    else:
        env = make_env_from_metadata(meta)
    if model is not None:
        check_policy_fits(model, env)
        act, label = policy_actor(model), f"policy {args.model}"
    else:
        from sb3_mimic.experts import PDExpert

        act, label = policy_actor(PDExpert.for_env(env, lookahead=args.lookahead)), "PD expert"
    base = env.unwrapped
    print(f"Evaluating {label} on {base.clip.name} (action_mode={base.action_mode}), seed {args.seed}")
    result = evaluate(act, env, episodes=args.eval_episodes, seed=args.seed, progress_bar=True)
    print(result.format_block())
    if args.json_out:
        path = Path(args.json_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"Wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from sb3_mimic.version import __version__

    parser = argparse.ArgumentParser(
        prog="sb3-mimic", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"sb3-mimic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_sft(sub)
    _add_eval(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from sb3_mimic.motion import MotionClipError
    from sb3_mimic.sft import PolicyLoadError

    try:
        return args.func(args)
    except (ValueError, MotionClipError, PolicyLoadError, FileNotFoundError) as err:
        print(f"sb3-mimic {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sb3-mimic {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
