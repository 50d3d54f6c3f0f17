"""The ``sb3-mimic`` command line.

``sb3-mimic sft`` keeps the argument names and defaults of the original ``train_sft.py`` guide;
``sb3-mimic eval`` evaluates a saved policy (or the PD or MPC expert) on a clip.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"  # headless rendering; must precede the first import of mujoco

from sb3_mimic.envs.actions import ACTION_MODES
from sb3_mimic.experts.settings import EXPERTS

class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each default once: not for options without one (None, a store_true flag) or whose help says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        # identity, not ==: 0 and 0.0 equal False but are defaults worth showing
        unset = action.default is None or action.default is False or action.default is argparse.SUPPRESS
        if unset or "%(default)" in text or "default:" in text:
            return text
        return super()._get_help_string(action)


DESCRIPTION = """Teach DeepMimic's humanoid to imitate motion-capture clips in MuJoCo with Stable-Baselines3.

Clips are named as in DeepMimic (humanoid3d_walk or walk, ...) or given as a DeepMimic clip file path.
Run `sb3-mimic COMMAND --help` for a command's arguments."""


def _add_sft(sub) -> None:
    from sb3_mimic.configs import SFTConfig

    d = SFTConfig()
    p = sub.add_parser(
        "sft",
        help="supervised pretraining: PD- or MPC-expert demonstrations cloned into a TRPO policy, then evaluated",
        description=(
            "Supervised pretraining (SFT). With --expert pd (the default), a PD expert that targets the mocap pose "
            "`lookahead` control steps ahead labels reference states sampled across the clip (teacher forcing, with "
            "small state noise) and its own closed-loop rollouts; with --expert mpc, the MPC expert labels its own "
            "episodes, run with DART noise (--dart_noise) on the actions it executes. imitation's BC trains the actor "
            "of an sb3-contrib TRPO MlpPolicy on the labels, keeping the weights with the lowest validation MSE; the "
            "result is saved as an SB3 TRPO .zip (or a .pth checkpoint) and evaluated."
        ),
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--mocap", default=d.mocap,
                   help="clip name (e.g. humanoid3d_walk, walk) or clip file path; the default is the SFT guide's, "
                        "while dagger and train default to walk, the clip the MPC expert keeps up")
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
    p.add_argument("--action_mode", choices=ACTION_MODES, default=d.action_mode, help="env action mode")
    p.add_argument("--target_observation", action="store_true", help=TARGET_OBSERVATION_HELP)
    p.add_argument("--seed", type=int, default=d.seed, help="seed of demonstrations, training and evaluation")
    p.add_argument("--n_samples", type=int, default=d.n_samples, help="teacher-forced demonstrations")
    p.add_argument("--n_rollouts", type=int,
                   help="closed-loop expert episodes: added to the teacher-forced samples with --expert pd (default "
                        f"{SFTConfig.DEFAULT_ROLLOUTS['pd']}), the only demonstrations with --expert mpc (default "
                        f"{SFTConfig.DEFAULT_ROLLOUTS['mpc']}, up to 20 s of labels each)")
    p.add_argument("--qpos_noise", type=float, default=d.qpos_noise, help="joint-angle noise of teacher forcing, rad")
    p.add_argument("--qvel_noise", type=float, default=d.qvel_noise, help="velocity noise of teacher forcing")
    p.add_argument("--save_demos", metavar="NPZ", help="also save the demonstrations (with their metadata)")
    p.add_argument("--demos", metavar="NPZ", help="train on saved demonstrations instead of making new ones")
    p.add_argument("--expert", choices=EXPERTS, default=d.expert,
                   help="pd: teacher forcing and rollouts of the PD expert; mpc: episodes of the MPC expert, which "
                        "keeps its balance, with DART noise on its executed actions")
    p.add_argument("--dart_noise", type=float, default=d.dart_noise,
                   help="with --expert mpc: std of the noise on the executed actions (normalised units); labels "
                        "stay clean")
    p.add_argument("--normalize", action="store_true",
                   help="standardise observations inside the network (statistics of the demonstrations, saved in "
                        "the policy; fine-tuning keeps them)")
    p.add_argument("--no_progress", action="store_true", help="hide progress bars")
    add_mpc_options(p)
    p.set_defaults(func=_run_sft)


def _run_sft(args: argparse.Namespace) -> int:
    from sb3_mimic.configs import SFTConfig

    fields = SFTConfig.__dataclass_fields__
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    given.setdefault("n_rollouts", SFTConfig.DEFAULT_ROLLOUTS[args.expert])
    config = SFTConfig(**given, mpc_kwargs=mpc_overrides(args))
    config.validate()  # before importing torch (sb3_mimic.sft): a bad argument fails at once
    from sb3_mimic.sft import run_sft

    run_sft(config, progress_bar=not args.no_progress)
    return 0


def _add_actor_options(p: argparse.ArgumentParser, verb: str) -> None:
    """``--model`` or ``--expert`` (one of them) and ``--mocap``: what ``eval`` and ``video`` run, read by
    :func:`_policy_and_env`."""
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", help="policy file written by `sb3-mimic sft` (.zip or .pth) or any SB3 TRPO zip")
    who.add_argument("--expert", choices=EXPERTS, help=f"{verb} an expert instead of a policy")
    p.add_argument("--mocap", help="clip name or path (default: the clip the model was trained on)")


def _add_eval(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a saved policy, or the PD or MPC expert, on a clip",
        description=(
            "Run N deterministic episodes from seeded reference-state starts and print the mean, std, min and max "
            "return, the normalised return (0..1), the mean time to fall, the fall rate and the mean per-joint "
            "position error."
        ),
        formatter_class=_HelpFormatter,
    )
    _add_actor_options(p, "evaluate")
    p.add_argument("--action_mode", choices=ACTION_MODES, help="env action mode (default: the model's)")
    p.add_argument("--lookahead", type=int, default=1, help="expert lookahead, control steps (with --expert)")
    p.add_argument("--eval_episodes", type=int, default=10, help="number of episodes")
    p.add_argument("--seed", type=int, default=0, help="episode i starts from reset(seed=seed + i)")
    p.add_argument("--json", dest="json_out", help="also write the figures to this JSON file")
    p.add_argument("--trust_pickle", action="store_true", help=TRUST_HELP)
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    add_mpc_options(p)
    p.set_defaults(func=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    if args.eval_episodes < 1:
        raise ValueError(f"--eval_episodes must be at least 1, got {args.eval_episodes}")
    if args.lookahead < 1:
        raise ValueError(f"--lookahead must be at least 1 control step, got {args.lookahead}")
    if args.json_out:
        from sb3_mimic._util import check_writable

        check_writable(args.json_out)
    from sb3_mimic.evaluation import evaluate

    act, env = _policy_and_env(args)
    label = f"policy {args.model}" if args.model else f"{args.expert.upper()} expert"
    base = env.unwrapped
    print(f"Evaluating {label} on {base.clip.name} (action_mode={base.action_mode}), seed {args.seed}")
    # the MPC takes a noticeable time per control step: its bar ticks per step, a policy's per episode
    result = evaluate(act, env, episodes=args.eval_episodes, seed=args.seed, progress_bar=not args.no_progress,
                      progress_steps=args.expert == "mpc")
    print(result.format_block())
    if args.json_out:
        path = Path(args.json_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"Wrote {path}")
    return 0


TRUST_HELP = ("load a .zip that sb3-mimic did not write with SB3's own loader, which unpickles (runs) code stored in "
              "the file: only for files from a source you trust (sb3-mimic's own files never need it)")
DEFAULT_NUM_TIMESTEPS = 2_000_000


def _add_rl_common(p: argparse.ArgumentParser, resume: bool = True) -> None:
    from sb3_mimic.configs import PPO_DEFAULTS, TRPO_DEFAULTS

    p.add_argument("--num_timesteps", type=int, default=None,
                   help=f"total env steps of the run (default: {DEFAULT_NUM_TIMESTEPS}); with --resume, a larger "
                        "number extends the run")
    p.add_argument("--save_per_iter", type=int, default=10, help="checkpoint and evaluate every K iterations")
    p.add_argument("--run_dir", help="run directory (default: runs/<algo>_<clip>_<date-time>)")
    if resume:
        p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest checkpoint")
    p.add_argument("--n_envs", type=int, default=0,
                   help="parallel envs (default: 0 = 32 characters with --vec_env batched, one per CPU core with "
                        "subproc)")
    p.add_argument("--vec_env", choices=("batched", "subproc"), default="batched",
                   help="batched: all envs as characters of one batched simulation in this process, physics on every "
                        "core (sb3_mimic.envs.MimicHumanoidVecEnv; its speed against subproc: benchmarks/results/"
                        "env_throughput.md); "
                        "subproc: one env per worker process (SubprocVecEnv)")
    p.add_argument("--threads", type=int, default=0, help="physics threads with --vec_env batched (default: 0 = one per core)")
    p.add_argument("--exploration_std", type=float, default=0.05, help="action std (normalised units) at the start")
    p.add_argument("--eval_episodes", type=int, default=10, help="evaluation episodes at each checkpoint")
    p.add_argument("--seed", type=int, default=0, help="seed of envs, network initialisation and evaluations")
    p.add_argument("--n_steps", type=int,
                   help="env steps per env and iteration (default: 128 with --vec_env batched, 4096 per iteration; "
                        f"with subproc {TRPO_DEFAULTS['n_steps']} for TRPO, {PPO_DEFAULTS['n_steps']} for PPO)")
    p.add_argument("--batch_size", type=int,
                   help=f"minibatch size (default: {TRPO_DEFAULTS['batch_size']} for TRPO, {PPO_DEFAULTS['batch_size']} "
                        "for PPO)")
    for name, what in (("gamma", "discount"), ("gae_lambda", "GAE lambda"), ("learning_rate", "step size (TRPO: the "
                       "critic's)")):
        p.add_argument(f"--{name}", type=float,
                       help=f"{what} (default: {TRPO_DEFAULTS[name]} for TRPO, {PPO_DEFAULTS[name]} for PPO)")
    p.add_argument("--n_epochs", type=int, help=f"PPO epochs per iteration (default: {PPO_DEFAULTS['n_epochs']})")
    p.add_argument("--curriculum", type=int, default=0, metavar="STEPS",
                   help="DeepMimic's episode-length curriculum: training episodes' limit grows linearly from "
                        "--curriculum_start to 20 s over STEPS env steps; needs --vec_env batched (default: 0 = off)")
    p.add_argument("--curriculum_start", type=float, default=0.5, metavar="SECONDS",
                   help="the curriculum's first episode limit")
    p.add_argument("--time_budget", type=float, help="stop after this many minutes of training (all sessions)")
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar")


def _run_options(args: argparse.Namespace) -> dict:
    """RunConfig fields shared by finetune and train."""
    hyper = {k: getattr(args, k) for k in ("n_steps", "batch_size", "n_epochs") if getattr(args, k) is not None}
    for name, value in hyper.items():
        if value < 1:
            raise ValueError(f"--{name} must be at least 1, got {value}")
    if args.n_epochs is not None and getattr(args, "algo", "trpo") != "ppo":
        raise ValueError("--n_epochs is a PPO setting; TRPO takes one natural-gradient step per iteration")
    for name, low, high in (("gamma", 0.0, 1.0), ("gae_lambda", 0.0, 1.0), ("learning_rate", 0.0, math.inf)):
        value = getattr(args, name)
        if value is not None:
            if not (low < value <= high) or (high == math.inf and not math.isfinite(value)):
                raise ValueError(f"--{name} must be in ({low}, {high}], got {value}")
            hyper[name] = value
    return {
        "num_timesteps": DEFAULT_NUM_TIMESTEPS if args.num_timesteps is None else args.num_timesteps,
        "save_per_iter": args.save_per_iter,
        "n_envs": args.n_envs,
        "vec_env": args.vec_env, "threads": args.threads,
        "seed": args.seed, "exploration_std": args.exploration_std, "eval_episodes": args.eval_episodes,
        "time_budget_s": None if args.time_budget is None else 60.0 * args.time_budget, "hyperparameters": hyper,
        "curriculum_steps": args.curriculum, "curriculum_start_s": args.curriculum_start,
    }


def _add_finetune(sub) -> None:
    p = sub.add_parser(
        "finetune",
        help="RL fine-tuning (TRPO or PPO) of an SFT policy, with critic warm-up, checkpoints and evaluations",
        description=(
            "Fine-tune a policy written by `sb3-mimic sft` with sb3-contrib TRPO (default) or SB3 PPO. The critic is "
            "first fitted on rollouts of the frozen SFT policy (--critic_warmup iterations), then actor and critic "
            "train together, the actor kept near the SFT policy by an annealed imitation term. "
            "Every --save_per_iter iterations a checkpoint is written atomically and the policy is evaluated "
            "(RUN_DIR/evaluations.csv); TensorBoard logs go to RUN_DIR/tb."
        ),
        formatter_class=_HelpFormatter,
    )
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--load_sft_pretrain", metavar="PATH", help="policy written by `sb3-mimic sft` (.zip or .pth)")
    start.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest checkpoint")
    p.add_argument("--mocap", help="clip to fine-tune on (default: the SFT policy's clip)")
    p.add_argument("--algo", choices=["trpo", "ppo"], default="trpo",
                   help="RL algorithm (the SFT file is an actor-critic policy both take)")
    p.add_argument("--critic_warmup", type=int, default=5, help="critic-only iterations before actor updates")
    p.add_argument("--imitation_coef", type=float, default=1.0,
                   help="weight of the imitation term toward the SFT policy after the warm-up (kickstarting)")
    p.add_argument("--imitation_anneal", type=int, default=2_000_000,
                   help="env steps over which the imitation term's weight falls linearly to 0")
    p.add_argument("--no_imitation", action="store_true", help="fine-tune with the RL loss alone (no imitation term)")
    p.add_argument("--trust_pickle", action="store_true", help=TRUST_HELP)
    _add_termination_distance(p)
    p.add_argument("--expert_starts", metavar="DEMOS", help="start training episodes in physics states of the "
                   "expert's rollouts recorded in DEMOS (.npz of `sft --expert mpc --save_demos`), at their clip "
                   "times; needs --vec_env batched")
    p.add_argument("--expert_start_share", type=float, default=0.5,
                   help="with --expert_starts: the share of episodes that start there (the others from the reference)")
    _add_rl_common(p, resume=False)
    p.set_defaults(func=_run_finetune)


def _add_termination_distance(p: argparse.ArgumentParser) -> None:
    p.add_argument("--termination_distance", type=float, metavar="M",
                   help="also end training episodes when a body strays this far (m) from its reference (MimicKit: "
                        "1.0); evaluations keep the plain fall rule")


def _with_termination_distance(args: argparse.Namespace, env_kwargs: dict) -> dict:
    """``env_kwargs`` with ``--termination_distance`` (checked) when it was given."""
    if args.termination_distance is None:
        return env_kwargs
    if not (math.isfinite(args.termination_distance) and args.termination_distance > 0):
        raise ValueError(f"--termination_distance must be a positive number of metres, got {args.termination_distance}")
    return {**env_kwargs, "termination_distance": args.termination_distance}


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="pure RL (TRPO or PPO from scratch) with checkpoints and evaluations",
        description="Train a policy from scratch with TRPO (sb3-contrib) or PPO on an sb3-mimic env.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--algo", choices=["trpo", "ppo"], default="trpo", help="RL algorithm")
    p.add_argument("--env", help=f"registered env id (default: {DEFAULT_TRAIN_ENV}, or the --mocap clip's; walk as "
                                 "for dagger, while sft keeps its guide's humanoid3d_dance_a)")
    p.add_argument("--mocap", help="clip to train on (name or path), instead of --env")
    p.add_argument("--action_mode", choices=ACTION_MODES, default="pd_target", help="env action mode")
    p.add_argument("--target_observation", action="store_true", help=TARGET_OBSERVATION_HELP)
    p.add_argument("--hidden_size", type=int, default=64, help="units per hidden layer (actor and critic)")
    p.add_argument("--num_layers", type=int, default=2, help="hidden layers (actor and critic)")
    p.add_argument("--normalize", action="store_true",
                   help="standardise observations inside the network, with running statistics saved in the policy")
    _add_termination_distance(p)
    _add_rl_common(p)
    p.set_defaults(func=_run_train)


DEFAULT_TRAIN_ENV = "MimicHumanoidWalk-v0"


def _default_run_dir(algo: str, clip: str) -> str:
    import time

    return str(Path("runs") / f"{algo}_{clip}_{time.strftime('%Y%m%d-%H%M%S')}")


def _run_rl(args: argparse.Namespace, config) -> int:
    config.validate()  # again in run_training; here before torch is imported and the first line printed
    from sb3_mimic.rl import run_training

    run_dir = args.run_dir or _default_run_dir(config.algo, _clip_name(config.env_id, config.env_kwargs))
    print(f"Training {config.algo.upper()} on {config.env_id} for {config.num_timesteps} steps in {run_dir}")
    run_training(config, run_dir, progress_bar=not args.no_progress)
    print(f"Done: {run_dir}/final_model.zip")
    return 0


def _clip_name(env_id: str, env_kwargs: dict) -> str:
    """The name of the clip an env id (with kwargs) imitates, for run folder names."""
    import gymnasium as gym

    from sb3_mimic.motion import load_clip

    return load_clip(env_kwargs.get("motion") or gym.spec(env_id).kwargs.get("motion", "walk")).name


def _maybe_resume(args: argparse.Namespace) -> int | None:
    if not args.resume:
        return None
    from sb3_mimic.configs import read_resumable_run

    read_resumable_run(args.resume)  # a missing or damaged run.json fails before torch (sb3_mimic.rl) is imported
    from sb3_mimic.rl import resume_training

    resume_training(args.resume, progress_bar=not args.no_progress, num_timesteps=args.num_timesteps)
    return 0


def _run_finetune(args: argparse.Namespace) -> int:
    resumed = _maybe_resume(args)
    if resumed is not None:
        return resumed
    options = _run_options(args)  # its checks before importing torch (sb3_mimic.policies)
    _with_termination_distance(args, {})
    if args.expert_starts is not None and not Path(args.expert_starts).is_file():
        raise ValueError(f"--expert_starts {args.expert_starts}: no such file (it does not exist); record one with "
                         "sb3-mimic sft --expert mpc --save_demos FILE.npz")
    from sb3_mimic._resources import existing_policy_file

    existing_policy_file("--load_sft_pretrain", args.load_sft_pretrain)
    from sb3_mimic.policies import PolicyLoadError, load_policy, metadata_of, resolve_policy_path
    from sb3_mimic.registration import env_spec_for
    from sb3_mimic.configs import RunConfig

    sft = load_policy(args.load_sft_pretrain, trust_pickle=args.trust_pickle)
    meta = metadata_of(sft)
    if args.mocap:
        env_id, env_kwargs = env_spec_for(args.mocap, meta.action_mode if meta is not None else "pd_target",
                                          _observes_target(meta))
    elif meta is not None:
        env_id, env_kwargs = meta.env_id, dict(meta.env_kwargs)
    else:
        raise PolicyLoadError(f"{args.load_sft_pretrain} carries no sb3-mimic metadata; pass --mocap CLIP")
    if args.mocap:
        _warn_if_other_clip(args.load_sft_pretrain, meta, _clip_name(env_id, env_kwargs), "fine-tuning")
    env_kwargs = _with_termination_distance(args, env_kwargs)
    arch = sft.policy_kwargs.get("net_arch", {}).get("pi", [64, 64])
    config = RunConfig(
        algo=args.algo, env_id=env_id, env_kwargs=env_kwargs, critic_warmup_iterations=args.critic_warmup,
        imitation_coef=0.0 if args.no_imitation else args.imitation_coef, imitation_anneal_steps=args.imitation_anneal,
        hidden_size=arch[0] if arch else 64, num_layers=len(arch),
        load_sft_pretrain=str(resolve_policy_path(args.load_sft_pretrain).resolve()), trust_pickle=args.trust_pickle,
        expert_starts=None if args.expert_starts is None else str(Path(args.expert_starts).resolve()),
        expert_start_share=args.expert_start_share, **options,
    )
    from sb3_mimic.rl import warmup_steps

    warm = warmup_steps(config)
    if config.num_timesteps <= warm:
        _warn(f"--num_timesteps {config.num_timesteps} ends inside the critic warm-up ({config.critic_warmup_iterations} "
              f"iterations, {warm} env steps): the actor will never be updated; raise --num_timesteps or lower "
              "--critic_warmup")
    return _run_rl(args, config)


TARGET_OBSERVATION_HELP = ("observe the target block too: the reference's root offset, heading and body positions "
                           "seen from the character, which DeepMimic's state leaves out (a policy can then see and "
                           "undo a drift of its heading); the policy file records it for eval, video and finetune")


def _observes_target(meta) -> bool:
    """Whether a policy with metadata ``meta`` was trained with the target block (its env kwargs say so)."""
    return bool(meta is not None and meta.env_kwargs.get("target_observation", False))


def _warn(message: str) -> None:
    print(f"sb3-mimic: warning: {message}", file=sys.stderr)


def _warn_if_other_clip(path: str, meta, clip: str, doing: str) -> None:
    """Warn when the policy at ``path`` (its metadata ``meta``) was trained on another clip than ``clip``."""
    if meta is not None and meta.clip is not None and meta.clip != clip:
        _warn(f"{path} was trained on clip {meta.clip!r}; {doing} it on {clip!r}")


def _run_train(args: argparse.Namespace) -> int:
    resumed = _maybe_resume(args)
    if resumed is not None:
        return resumed
    from sb3_mimic.registration import check_env_id, env_spec_for, policy_env_kwargs

    if args.mocap and args.env:
        raise ValueError("give --env or --mocap, not both (--mocap picks the clip's env id)")
    options = _run_options(args)  # these checks and the env id's before importing torch (sb3_mimic.rl)
    env_id, env_kwargs = (env_spec_for(args.mocap, args.action_mode, args.target_observation) if args.mocap
                          else (args.env or DEFAULT_TRAIN_ENV, policy_env_kwargs(args.action_mode,
                                                                                 args.target_observation)))
    env_kwargs = _with_termination_distance(args, env_kwargs)
    check_env_id(env_id)
    from sb3_mimic.configs import RunConfig

    config = RunConfig(
        algo=args.algo, env_id=env_id, env_kwargs=env_kwargs, hidden_size=args.hidden_size,
        num_layers=args.num_layers, normalize_observations=args.normalize, critic_warmup_iterations=0, **options,
    )
    return _run_rl(args, config)


def _add_video(sub) -> None:
    p = sub.add_parser(
        "video",
        help="headless mp4 (or a still PNG) of a policy with the reference as a translucent ghost",
        description=(
            "Record the policy (or an expert) from a seeded reference-state start, camera following the "
            "character's root, the reference drawn as an orange ghost beside it (--ghost_offset), at the env's "
            "control rate (30 fps); --overlay writes time, reward and MPJPE on the frames."
        ),
        formatter_class=_HelpFormatter,
    )
    _add_actor_options(p, "record")
    p.add_argument("--out", default="run.mp4", help="output .mp4")
    p.add_argument("--frame", metavar="PNG", help="write a single still PNG instead of a video")
    p.add_argument("--frame_step", type=int, default=0, help="with --frame: steps to take before the still")
    p.add_argument("--seconds", type=float, default=10.0, help="video length (stops earlier if the episode ends)")
    p.add_argument("--width", type=int, default=640, help="image width")
    p.add_argument("--height", type=int, default=480, help="image height")
    p.add_argument("--ghost_offset", type=float, nargs=3, default=(1.0, 0.0, 0.0), metavar=("X", "Y", "Z"),
                   help="where the ghost is drawn relative to the reference (m, world frame): +x is to the right "
                        "in the image, so the default stands it beside the character; 0 0 0 draws it over the "
                        "character, 0 1 0 behind it")
    p.add_argument("--overlay", action="store_true",
                   help="write the time, the step's reward and the MPJPE in the top-left corner of every frame")
    p.add_argument("--no_early_termination", action="store_true", help="keep going after a fall")
    p.add_argument("--seed", type=int, default=0, help="reset seed (start time)")
    p.add_argument("--start_time", type=float, help="start at this clip time instead of a seeded one")
    p.add_argument("--trust_pickle", action="store_true", help=TRUST_HELP)
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    add_mpc_options(p)
    p.set_defaults(func=_run_video)


def add_mpc_options(p: argparse.ArgumentParser) -> None:
    """``--mpc_<name>`` for every :class:`~sb3_mimic.experts.MPCSettings` field (the clip's setting when not
    given); the benchmarks use the same options."""
    import dataclasses

    from sb3_mimic.experts.settings import MPCSettings

    group = p.add_argument_group("MPC expert settings (with --expert mpc; default: the clip's catalogue settings)")
    for f in dataclasses.fields(MPCSettings):
        text = f"{f.metadata['help']} (default: the clip's, else {f.default})"
        if f.type in ("bool", bool):
            group.add_argument(f"--mpc_{f.name}", action=argparse.BooleanOptionalAction, default=None,
                               help=text + "")  # : no "(default: None)" appended
        else:
            kind = {"int": int, "float": float}[f.type if isinstance(f.type, str) else f.type.__name__]
            group.add_argument(f"--mpc_{f.name}", type=kind, default=None, metavar=kind.__name__.upper(),
                               help=text + "")


def mpc_overrides(args: argparse.Namespace) -> dict:
    """The ``--mpc_*`` options given on the command line, by setting name (the others come from the clip)."""
    from sb3_mimic.experts.settings import MPCSettings

    given = {name: getattr(args, f"mpc_{name}", None) for name in MPCSettings.names()}
    given = {name: value for name, value in given.items() if value is not None}
    for name, value in given.items():
        # each option alone on the defaults (ensemble with the stateless it needs): MPCSettings decides, the message
        # names the option; combinations of options are checked where the settings are built
        try:
            MPCSettings(**{name: value, **({"stateless": True} if name == "ensemble" else {})})
        except ValueError as err:
            rule = _MPC_RULES.get(name)
            raise ValueError(f"--mpc_{name} must be {rule}, got {value}" if rule else f"--mpc_{name} {value}: {err}") from err
    return given


#: What a bad ``--mpc_<name>`` is told (MPCSettings' own rules, per option).
_MPC_RULES = {
    "horizon": "a whole number >= 2", "samples": "a whole number >= 2", "iterations": "a whole number >= 1",
    "knots": "a whole number >= 2", "ensemble": "a whole number >= 1", "noise": "a positive number",
    "temperature": "a positive number", "fall_penalty": "a number >= 0", "decay": "in (0, 1]",
}


def _policy_and_env(args: argparse.Namespace, **env_overrides):
    """(actor, env) for --model/--expert and --mocap, with extra env kwargs."""
    import gymnasium as gym

    from sb3_mimic.evaluation import policy_actor
    from sb3_mimic.policies import check_policy_fits, load_policy, read_metadata
    from sb3_mimic.registration import env_spec_for

    trust = getattr(args, "trust_pickle", False)
    meta = read_metadata(args.model, trust) if getattr(args, "model", None) else None
    if args.mocap:
        mode = getattr(args, "action_mode", None) or (meta.action_mode if meta is not None else "pd_target")
        env_id, env_kwargs = env_spec_for(args.mocap, mode, _observes_target(meta))
    elif meta is not None:
        env_id, env_kwargs = meta.env_id, dict(meta.env_kwargs)
    else:
        raise ValueError("--mocap is needed: the policy carries no clip, or an expert was asked for")
    env = gym.make(env_id, **env_kwargs, **env_overrides)
    if getattr(args, "model", None):
        model = load_policy(args.model, env, trust_pickle=trust)
        check_policy_fits(model, env)
        return policy_actor(model), env
    from sb3_mimic.experts import make_expert

    expert = make_expert(args.expert, env, lookahead=getattr(args, "lookahead", 1), seed=getattr(args, "seed", 0),
                         **mpc_overrides(args))
    return policy_actor(expert), env


def _run_video(args: argparse.Namespace) -> int:
    from sb3_mimic._util import check_writable

    for name in ("width", "height"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1 pixel, got {getattr(args, name)}")
    if not args.seconds > 0:
        raise ValueError(f"--seconds must be positive, got {args.seconds}")
    if args.frame_step < 0:
        raise ValueError(f"--frame_step must not be negative, got {args.frame_step}")
    out = args.frame or args.out
    suffix = ".png" if args.frame else ".mp4"
    if Path(out).suffix.lower() != suffix:
        raise ValueError(f"{'--frame' if args.frame else '--out'} must name a {suffix} file, got {out!r}")
    check_writable(out)  # an unwritable folder fails now, not after the policy is loaded and the frames rendered
    from sb3_mimic.video import record_video, save_frame

    overrides = {"render_mode": "rgb_array", "width": args.width, "height": args.height,
                 "ghost_offset": tuple(args.ghost_offset)}
    if args.no_early_termination:
        overrides["early_termination"] = False
    act, env = _policy_and_env(args, **overrides)
    if args.frame:
        info = save_frame(act, env, args.frame, steps=args.frame_step, seed=args.seed, start_time=args.start_time,
                          overlay=args.overlay)
        print(f"Wrote {info.path} (t = {info.time:.2f} s{', fell' if info.fell else ''})")
    else:
        info = record_video(act, env, args.out, seconds=args.seconds, seed=args.seed, start_time=args.start_time,
                            progress_bar=not args.no_progress, overlay=args.overlay)
        end = " (the episode ended early: fall or clip end)" if info.ended_early else ""
        print(f"Wrote {info.path}: {info.frames} frames at {info.fps} fps, {info.seconds:.2f} s{end}")
    env.close()
    return 0


def _add_plot(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="learning curves of one or more runs (PNG)",
        description=(
            "Normalised return, time to fall and MPJPE against env steps and wall time, one line per run, with a "
            "band of +/- one std over each evaluation's episodes; warns when the runs imitate different clips."
        ),
        formatter_class=_HelpFormatter,
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (with evaluations.csv)")
    p.add_argument("--out", default="curves.png", help="output PNG")
    p.add_argument("--labels", nargs="+", help="one legend label per run (default: folder names)")
    p.set_defaults(func=_run_plot)


def _run_plot(args: argparse.Namespace) -> int:
    import warnings

    from sb3_mimic.plotting import plot_learning_curves

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = plot_learning_curves(args.run_dirs, args.out, labels=args.labels)
    for warning in caught:
        _warn(str(warning.message))
    print(f"Wrote {path}")
    return 0


#: ``DAggerConfig`` fields that :func:`add_dagger_options` offers: how a round is collected and trained.
DAGGER_OPTIONS = ("epochs_per_round", "beta_decay", "beta_rampdown", "mixing", "init_policy", "hidden_size", "num_layers",
                  "batch_size", "lr", "lookahead", "action_mode", "target_observation")


def add_dagger_options(p: argparse.ArgumentParser) -> None:
    """The DAgger options of :data:`DAGGER_OPTIONS` (``sb3-mimic dagger`` and the benchmarks share them)."""
    from sb3_mimic.configs import MIXINGS, DAggerConfig

    d = DAggerConfig()
    p.add_argument("--epochs_per_round", type=int, default=d.epochs_per_round, help="BC epochs after each round")
    p.add_argument("--beta_decay", type=float, default=d.beta_decay,
                   help="decay per round of the expert's share, in (0, 1] (ignored with --beta_rampdown)")
    p.add_argument("--beta_rampdown", type=int, default=d.beta_rampdown, metavar="ROUNDS",
                   help="if positive, the expert's share falls linearly from 1 to 0 over this many rounds instead "
                        "of decaying by --beta_decay (later rounds run the learner alone)")
    p.add_argument("--mixing", choices=MIXINGS, default=d.mixing,
                   help="switch: each step runs the expert's action with probability beta, else the learner's "
                        "(imitation's DAgger); blend: each step runs beta * expert + (1 - beta) * learner")
    p.add_argument("--init_policy", help="start from this policy (e.g. an SFT zip)")
    p.add_argument("--hidden_size", type=int, default=d.hidden_size, help="units per hidden layer (fresh policy)")
    p.add_argument("--num_layers", type=int, default=d.num_layers, help="hidden layers (fresh policy)")
    p.add_argument("--batch_size", type=int, default=d.batch_size, help="BC batch size")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument("--lookahead", type=int, default=d.lookahead, help="PD expert lookahead, control steps")
    p.add_argument("--action_mode", choices=ACTION_MODES, default=d.action_mode,
                   help="the learner's action mode (the experts label in it; the MPC plans PD targets either way)")
    p.add_argument("--target_observation", action="store_true", help=TARGET_OBSERVATION_HELP)


def dagger_options(args: argparse.Namespace) -> dict:
    """The :data:`DAGGER_OPTIONS` whose value differs from ``DAggerConfig``'s default."""
    from sb3_mimic.configs import DAggerConfig

    d = DAggerConfig()
    return {name: getattr(args, name) for name in DAGGER_OPTIONS if getattr(args, name) != getattr(d, name)}


def _add_dagger(sub) -> None:
    from sb3_mimic.configs import DAggerConfig

    d = DAggerConfig()
    p = sub.add_parser(
        "dagger",
        help="DAgger: distil the PD or MPC expert into the TRPO policy, round by round",
        description=(
            "Each round runs the current policy (mixed with the expert, whose share is beta_decay**round, or falls "
            "linearly to 0 over --beta_rampdown rounds), labels the visited states with the expert running alongside, "
            "and retrains the policy on all rounds' labels. Rounds' data stay in RUN_DIR/demos; RUN_DIR/policy.zip is "
            "the same TRPO-ready zip as `sft` writes."
        ),
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--mocap", default=d.mocap,
                   help="clip name or path (walk by default: the clip the MPC expert keeps up; sft keeps its guide's "
                        "humanoid3d_dance_a)")
    p.add_argument("--expert", choices=EXPERTS, default=d.expert, help="expert that labels the states")
    p.add_argument("--rounds", type=int, default=d.rounds, help="DAgger rounds")
    p.add_argument("--steps_per_round", type=int, default=d.steps_per_round, help="env steps labelled per round")
    add_dagger_options(p)
    p.add_argument("--seed", type=int, default=d.seed, help="seed")
    p.add_argument("--run_dir", help="run directory (default: runs/dagger_<clip>_<date-time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a DAgger run from its last finished round")
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar of each round's labelling")
    add_mpc_options(p)
    p.set_defaults(func=_run_dagger)


def _run_dagger(args: argparse.Namespace) -> int:
    from sb3_mimic.configs import DAggerConfig

    if args.resume:
        from sb3_mimic.configs import read_dagger_run

        read_dagger_run(args.resume)  # a damaged dagger.json fails before torch (sb3_mimic.dagger) is imported
        from sb3_mimic.dagger import run_dagger

        run_dagger(None, args.resume, resume=True, progress_bar=not args.no_progress)
        print(f"Done: {args.resume}/policy.zip")
        return 0
    fields = DAggerConfig.__dataclass_fields__
    config = DAggerConfig(**{k: v for k, v in vars(args).items() if k in fields}, mpc_kwargs=mpc_overrides(args))
    config.validate()  # before importing torch (sb3_mimic.dagger): a bad argument fails at once
    from sb3_mimic.dagger import run_dagger
    from sb3_mimic.motion import load_clip

    clip = load_clip(config.mocap).name
    if config.init_policy:
        from sb3_mimic.policies import read_metadata

        _warn_if_other_clip(config.init_policy, read_metadata(config.init_policy), clip, "DAgger trains")
    run_dir = args.run_dir or _default_run_dir("dagger", clip)
    print(f"DAgger on {config.mocap} with the {config.expert.upper()} expert, {config.rounds} rounds, in {run_dir}")
    run_dagger(config, run_dir, progress_bar=not args.no_progress)
    print(f"Done: {run_dir}/policy.zip")
    return 0


def _add_view(sub) -> None:
    p = sub.add_parser(
        "view", help="watch a clip, a policy or an expert live in MuJoCo's viewer (needs a display)",
        description=(
            "With --mocap alone: play the clip kinematically. With --model or --expert: run it in physics with the "
            "reference as an orange ghost, in real time, restarting when an episode ends. Close the window to stop. "
            "Without a display, use `sb3-mimic video`. Unlike the other commands that run episodes, view has no "
            "--no_progress: it shows no progress bar, since the window itself plays in real time."
        ),
        formatter_class=_HelpFormatter,
    )
    who = p.add_mutually_exclusive_group()
    who.add_argument("--model", help="policy file (.zip or .pth)")
    who.add_argument("--expert", choices=EXPERTS, help="watch an expert")
    p.add_argument("--mocap", help="clip name or path (required without --model; default: the model's clip)")
    p.add_argument("--seconds", type=float, default=60.0, help="how long to play (simulated seconds)")
    p.add_argument("--speed", type=float, default=1.0, help="playback speed (1 = real time)")
    p.add_argument("--seed", type=int, default=0, help="reset seed (start time)")
    p.add_argument("--trust_pickle", action="store_true", help=TRUST_HELP)
    add_mpc_options(p)
    p.set_defaults(func=_run_view)


def _run_view(args: argparse.Namespace) -> int:
    from sb3_mimic.viewer import NO_DISPLAY, display_available

    if not display_available():
        raise ValueError(NO_DISPLAY)
    if not (args.seconds > 0 and args.speed > 0):
        raise ValueError(f"--seconds and --speed must be positive, got {args.seconds} and {args.speed}")
    if not args.model and not args.expert:
        if not args.mocap:
            raise ValueError("give --mocap CLIP to play a clip, or --model PATH / --expert pd|mpc to run one")
        from sb3_mimic.motion import load_clip
        from sb3_mimic.viewer import play_clip

        play_clip(load_clip(args.mocap), seconds=args.seconds, speed=args.speed)
        return 0
    from sb3_mimic.viewer import play_policy

    act, env = _policy_and_env(args, render_mode="human")
    try:
        play_policy(act, env, seconds=args.seconds, speed=args.speed, seed=args.seed)
    finally:
        env.close()
    return 0


def _add_clips(sub) -> None:
    p = sub.add_parser(
        "clips", help="list the catalogue's clips: duration, loop, env id, fall rule",
        description="The motion clips of the catalogue (motions/catalogue.json) with what the env does with them.",
        formatter_class=_HelpFormatter,
    )
    p.set_defaults(func=_run_clips)


def _run_clips(args: argparse.Namespace) -> int:
    from sb3_mimic.motion import available_clips, default_fall_bodies, load_clip

    default = set(default_fall_bodies())
    rows = [("clip", "duration", "loop", "env id", "falls when the floor touches")]
    for name in available_clips():
        clip = load_clip(name)
        bodies = set(clip.info.fall_bodies)
        if bodies == default:
            rule = "any body but the feet"
        elif not bodies:
            rule = "never (no fall bodies)"
        elif bodies < default and len(default - bodies) < len(bodies):
            rule = "any body but the feet, " + ", ".join(sorted(default - bodies))
        else:
            rule = ", ".join(b for b in default_fall_bodies() if b in bodies)
        rows.append((name, f"{clip.duration:.2f} s", "yes" if clip.loop else "no", clip.env_id, rule))
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
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
    _add_finetune(sub)
    _add_train(sub)
    _add_dagger(sub)
    _add_video(sub)
    _add_plot(sub)
    _add_clips(sub)
    _add_view(sub)
    return parser


def _check_common(args: argparse.Namespace) -> None:
    """Checks of options several commands share, before any command imports torch or starts work."""
    from sb3_mimic.configs import is_seed

    if getattr(args, "seed", None) is not None and not is_seed(args.seed):
        raise ValueError(f"--seed must be a whole number >= 0 (numpy and Gymnasium refuse negative seeds), "
                         f"got {args.seed}")
    if hasattr(args, "mpc_horizon"):
        mpc_overrides(args)  # a bad --mpc_* value fails here, naming the option and its value
    if getattr(args, "mocap", None):
        from sb3_mimic.motion import load_clip

        load_clip(args.mocap)  # an unknown clip, a missing or malformed file fails here (the clip is cached)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # MotionClipError and sb3_mimic.policies.PolicyLoadError are ValueErrors: importing the latter would import
    # torch before the first argument is checked
    try:
        _check_common(args)
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"sb3-mimic {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sb3-mimic {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
