"""The root's heading on inverted clips: DeepMimic's formula against ``sb3_mimic.reward.heading``.

DeepMimic's heading, the direction of the root's x axis projected on the floor, swings when that axis turns vertical
(roll, crawl, the getups, backflip): the simulated character and its reference, a few degrees apart, then get
headings tens of degrees apart, which zeroes the end-effector term of the reward (ankle and wrist positions in the
heading frame) and makes the observation jump. ``sb3_mimic.reward.heading`` is DeepMimic's while the x axis is
within 45 degrees of horizontal and blends in the floor direction of the root's sagittal plane beyond. For every
clip of the catalogue (or ``--clips``), with each formula in turn:

1. **first step of PD tracking**: ``--starts`` start times evenly spread over the clip (``k * duration / starts``),
   ``reset(options={"start_time": t})``, then one step with the action that targets the reference's next pose
   (``pd_target_action(clip.sample(time + dt)[0])``): the share of starts whose reward is above ``--threshold``
   (0.85), the mean reward and end-effector term, and the largest heading difference between the character and
   its reference after the step;
2. **reference headings**: the largest change of the heading between consecutive frames of the clip, and
   between consecutive control steps (``clip.sample`` every ``env.dt``), in degrees; and the share of frames
   whose root x axis is more than 45 degrees from horizontal (where the two formulas differ).

The old formula is computed here (:func:`deepmimic_heading`) and swapped in for ``sb3_mimic.reward.heading`` in
every ``sb3_mimic`` module that imported it (:func:`heading_formula`), so the env, its observation and its reward
all use it. Nothing is random; the exit status is 0 whatever the figures. Run from the repository root (about
10 s)::

    .venv/bin/python benchmarks/heading.py
    .venv/bin/python benchmarks/heading.py --clips roll crawl --out /tmp/heading.md --json /tmp/heading.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import sys
from pathlib import Path

import gymnasium
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout, installed or not
import sb3_mimic.reward
from sb3_mimic import available_clips, load_clip

from _machine import report_header

RESULTS = Path(__file__).resolve().parent / "results"
NEW_HEADING = sb3_mimic.reward.heading
COLUMNS = [
    ("clip", "clip"), ("share_above_old", "share > {thr}, old"), ("share_above_new", "share > {thr}, new"),
    ("mean_reward_old", "mean reward, old"), ("mean_reward_new", "mean reward, new"),
    ("mean_ee_old", "mean ee term, old"), ("mean_ee_new", "mean ee term, new"),
    ("max_dheading_old", "max sim-ref heading diff, old (deg)"),
    ("max_dheading_new", "max sim-ref heading diff, new (deg)"),
    ("frame_jump_old", "largest frame-to-frame jump, old (deg)"),
    ("frame_jump_new", "largest frame-to-frame jump, new (deg)"),
    ("step_jump_old", "largest step-to-step jump, old (deg)"),
    ("step_jump_new", "largest step-to-step jump, new (deg)"),
    ("share_x_steep", "frames with x > 45 deg from horizontal"),
]  # fmt: skip


def deepmimic_heading(root_quat: np.ndarray) -> np.ndarray:
    """DeepMimic's heading, the heading before this change: the root's x axis projected on the floor."""
    w, x, y, z = (root_quat[..., k] for k in range(4))
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


@contextlib.contextmanager
def heading_formula(formula):
    """Use ``formula`` as ``heading`` in every loaded ``sb3_mimic`` module that has the package's own (the env, the
    batch, the reward's features and the MPC import the name), and put the package's back afterwards."""
    modules = [m for name, m in list(sys.modules.items())
               if name.split(".")[0] == "sb3_mimic" and getattr(m, "heading", None) is NEW_HEADING]  # fmt: skip
    for module in modules:
        module.heading = formula
    try:
        yield
    finally:
        for module in modules:
            module.heading = NEW_HEADING


def wrapped_degrees(angle: np.ndarray) -> np.ndarray:
    """|angle| in degrees, wrapped to [0, 180]."""
    return np.abs(np.degrees((np.asarray(angle) + math.pi) % (2.0 * math.pi) - math.pi))


def first_steps(env, starts: int) -> list[dict]:
    """The first step of PD tracking from each start time, with whichever heading is in use."""
    u = env.unwrapped
    rows = []
    for k in range(starts):
        t = k * u.clip.duration / starts
        env.reset(options={"start_time": t})
        _, reward, _, _, info = env.step(u.pd_target_action(u.clip.sample(u.time + u.dt)[0]))
        sim, ref = u.data.qpos[3:7], u.reference_state()[0][3:7]
        dh = wrapped_degrees(sb3_mimic.reward.heading(sim) - sb3_mimic.reward.heading(ref))
        rows.append({"start_time": round(t, 4), "reward": round(float(reward), 4),
                     "end_effector": round(float(info["reward_end_effector"]), 4), "dheading_deg": round(float(dh), 2)})
    return rows


def largest_jump(formula, quats: np.ndarray) -> float:
    """The largest heading change (deg) between consecutive root orientations."""
    return round(float(wrapped_degrees(np.diff(formula(quats))).max()), 1)


def measure(name: str, starts: int, threshold: float) -> dict:
    clip = load_clip(name)
    env = gymnasium.make(clip.env_id)
    dt = env.unwrapped.dt
    steps = np.array([clip.sample(k * dt)[0][3:7] for k in range(int(clip.duration / dt) + 1)])
    fz = 2.0 * (clip.qpos[:, 4] * clip.qpos[:, 6] - clip.qpos[:, 3] * clip.qpos[:, 5])  # the x axis's z component
    steep = float((np.abs(fz) > math.sqrt(0.5)).mean())
    row: dict = {"clip": name, "frames": clip.num_frames, "share_x_steep": round(steep, 2)}
    for label, formula in (("old", deepmimic_heading), ("new", NEW_HEADING)):
        with heading_formula(formula):
            rows = first_steps(env, starts)
        rewards = np.array([r["reward"] for r in rows])
        row |= {
            f"share_above_{label}": round(float((rewards > threshold).mean()), 3),
            f"mean_reward_{label}": round(float(rewards.mean()), 3),
            f"mean_ee_{label}": round(float(np.mean([r["end_effector"] for r in rows])), 3),
            f"max_dheading_{label}": max(r["dheading_deg"] for r in rows),
            f"frame_jump_{label}": largest_jump(formula, clip.qpos[:, 3:7]),
            f"step_jump_{label}": largest_jump(formula, steps),
            f"starts_{label}": rows,
        }
    env.close()
    return row


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", nargs="+", default=None, help="clip names (default: every clip of the catalogue)")
    p.add_argument("--starts", type=int, default=40, help="start times per clip, evenly spread")
    p.add_argument("--threshold", type=float, default=0.85, help="first-step reward counted as good above this")
    p.add_argument("--out", type=Path, default=RESULTS / "heading.md", help="Markdown report")
    p.add_argument("--json", type=Path, default=RESULTS / "heading.json", help="the figures as JSON")
    args = p.parse_args(argv)
    unknown = sorted(set(args.clips or ()) - set(available_clips()))
    if unknown:
        p.error(f"unknown clips {unknown}; available: {' '.join(available_clips())}")
    if args.starts < 1:
        p.error("--starts must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    now = datetime.datetime.now().astimezone()
    rows = [measure(name, args.starts, args.threshold) for name in args.clips or available_clips()]
    mean = lambda key: round(float(np.mean([r[key] for r in rows])), 3)  # noqa: E731
    total = {"clip": "**mean over clips**"} | {key: mean(key) for key, _ in COLUMNS[1:7]}
    total |= {key: "" for key, _ in COLUMNS[7:]}
    thr = f"{args.threshold:g}"
    lines = [
        *report_header(
            "Heading of the root: DeepMimic's formula (old) against sb3_mimic.reward.heading (new)", now,
            f"First step of PD tracking from {args.starts} start times evenly spread over each clip "
            f"(`reset(options={{'start_time': t}})`, then `pd_target_action(clip.sample(time + dt)[0])`): share of "
            f"starts with reward > {thr}, mean reward and end-effector term (at most 0.15), and the largest heading "
            f"difference between the character and its reference after the step. Jumps: the largest heading change "
            f"between consecutive frames of the clip and between consecutive control steps (1/30 s) of the "
            f"reference. A forward roll or a backflip has to switch from facing forward to the backward heading of an "
            f"upside-down root somewhere, with either formula, so their jumps stay large.",
        ),
        "",
        "| " + " | ".join(title.format(thr=thr) for _, title in COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
        *["| " + " | ".join(str(row[key]) for key, _ in COLUMNS) + " |" for row in [*rows, total]],
    ]  # fmt: skip
    print("\n".join(lines))
    for path in (args.out, args.json):
        path.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.json.write_text(json.dumps({
        "date": now.isoformat(timespec="seconds"), "args": {k: str(v) for k, v in vars(args).items()},
        "mean_over_clips": total, "clips": rows,
    }, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
