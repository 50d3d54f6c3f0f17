"""Imitate your own clip: write a clip file in DeepMimic's format and train on it like a catalogue clip.

    python examples/own_clip.py              # a slowed-down walk, its PD expert over 10 episodes
    python examples/own_clip.py --tiny       # the test suite's budget (also SB3_MIMIC_EXAMPLES_TINY=1)

DeepMimic's clip files are JSON: ``{"Loop": "wrap" | "none", "Frames": [[duration, root position (3), root
quaternion (4), joint rotations (36)], ...]}``, y up, one row per key frame whose first number is the time to
the next frame.  Here the catalogue's walk (``sb3_mimic.load_clip("walk").path``) is copied with every frame
lasting ``--slowdown`` times longer: the same steps, taken more slowly.  The new file, ``OUT/walk_slow.txt``,
loads like any clip: ``gymnasium.make("MimicHumanoid-v0", motion=path)``, ``sb3-mimic sft --mocap path``,
``sb3-mimic video --expert pd --mocap path``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import gymnasium as gym

import sb3_mimic
from sb3_mimic.evaluation import evaluate, policy_actor
from sb3_mimic.experts import make_expert
from sb3_mimic.registration import env_spec_for


def tiny_requested(flag: bool) -> bool:
    """``--tiny`` or the environment variable ``SB3_MIMIC_EXAMPLES_TINY`` set (to anything but 0)."""
    return flag or os.environ.get("SB3_MIMIC_EXAMPLES_TINY", "0") not in ("", "0")


def write_slowed_clip(source: str | os.PathLike, out: Path, slowdown: float) -> Path:
    """Copy the DeepMimic clip file ``source`` to ``out`` with every frame's duration times ``slowdown``."""
    clip = json.loads(Path(source).read_text())
    for frame in clip["Frames"]:
        frame[0] *= slowdown
    rows = ",\n".join(json.dumps(frame) for frame in clip["Frames"])  # one key frame per line, as DeepMimic's files
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f'{{\n"Loop": {json.dumps(clip["Loop"])},\n"Frames":\n[\n{rows}\n]\n}}\n')
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a budget of seconds (as in the test suite)")
    parser.add_argument("--out", default="own_clip_out", help="folder for the new clip file")
    parser.add_argument("--slowdown", type=float, default=1.25, help="how many times longer every frame lasts")
    args = parser.parse_args(argv)
    if not args.slowdown > 0:
        parser.error(f"--slowdown must be positive, got {args.slowdown}")
    episodes = 2 if tiny_requested(args.tiny) else 10

    walk = sb3_mimic.load_clip("walk")
    path = write_slowed_clip(walk.path, Path(args.out) / "walk_slow.txt", args.slowdown)
    clip = sb3_mimic.load_clip(path)  # parsed, converted to MuJoCo (z up), stood on the floor
    print(f"Wrote {path}: clip {clip.name!r}, {clip.num_frames} frames, {clip.duration:.2f} s "
          f"(walk: {walk.duration:.2f} s), looping: {clip.loop}")

    env_id, env_kwargs = env_spec_for(path)  # what `sb3-mimic sft --mocap PATH` uses: the generic id and the path
    print(f"env: gymnasium.make({env_id!r}, **{env_kwargs})")
    env = gym.make("MimicHumanoid-v0", motion=str(path))
    obs, info = env.reset(seed=0)
    print(f"reset at t = {info['time']:.2f} s of {env.unwrapped.clip.duration:.2f} s, observation {obs.shape}")
    for name, env_of in (("walk", gym.make("MimicHumanoidWalk-v0")), (clip.name, env)):
        result = evaluate(policy_actor(make_expert("pd", env_of)), env_of, episodes=episodes, seed=0)
        print(f"PD expert on {name}: normalised return {result.normalized_return:.3f}, "
              f"time to fall {result.mean_survival_s:.2f} s, MPJPE {result.mpjpe_mm:.0f} mm ({episodes} episodes)")
        env_of.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
