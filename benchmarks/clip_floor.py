"""How far each reference clip's frames sit from the floor, under the old and the new height offset.

For every clip of the catalogue (or ``--clips``), loaded with :func:`sb3_mimic.load_clip`:

1. the lowest point of the character's geoms in every frame (``sb3_mimic.motion.lowest_point`` after
   ``mj_kinematics``), also before the clip's height offset (``clip.lift`` subtracted: the offset moves the root,
   so it moves every geom by the same amount);
2. the **old lift**, computed here: the deepest-penetration rule the loader used before, ``max(0, -min)`` over
   the frames, which raises the whole clip by its single deepest frame;
3. the **new lift**, ``clip.lift`` (:func:`sb3_mimic.motion.contact_lift`: the median contact frame touches the
   floor), and how many frames count as contact frames (lowest point within ``CONTACT_MARGIN`` of the
   ``ENVELOPE_PERCENTILE``-th percentile);
4. after the new lift, in mm: the lowest point of the median frame, of the 10th-percentile frame and of the
   deepest frame (percentiles over the frames, ``np.percentile`` with linear interpolation), how deep the contact
   frames go (the 10th percentile of their lowest points), the share of frames that penetrate more than 10 mm; and
   the median frame's lowest point under the old lift, for comparison;
5. the median over the frames in which the character is supported, not in free flight: a frame is in flight when
   the centre of mass (mass-weighted body positions) accelerates downward at more than ``FREE_FALL`` (0.6 g;
   second differences over the frame times), which no height decides (``tests/test_motion.py`` checks the same).

Negative heights are below the floor. Nothing is simulated; the exit status is 0 whatever the figures. Run from
the repository root (a few seconds)::

    .venv/bin/python benchmarks/clip_floor.py
    .venv/bin/python benchmarks/clip_floor.py --clips walk run crawl --out /tmp/floor.md --json /tmp/floor.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import mujoco
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout, installed or not
from sb3_mimic import available_clips, character, load_clip
from sb3_mimic.motion import CONTACT_MARGIN, ENVELOPE_PERCENTILE, lowest_point

from _machine import report_header

FREE_FALL = 0.6 * 9.81  # m/s^2 of downward centre-of-mass acceleration above which a frame is in flight
NOTES = [
    "Reading the table (the catalogue as measured when this text was written): a clip's median frame over all its",
    "frames includes its flight phases. Run's, 18 mm up, is airborne (9 of its 25 frames in flight; its median frame",
    "is the one before landing). Dance_b's, 9 mm up, is not, but two hops put 21 frames in free flight and the",
    "capture lands them on a foot 30-80 mm above the floor (those frames lie outside the contact margin), pulling its",
    "median up; its median supported frame is 4 mm up. Every clip's median supported frame is within 5 mm of the",
    "floor (tests/test_motion.py). Half of the contact frames lie under the floor by construction (the lift puts",
    "their median on it): the contact frames' 10th percentile says how deep they go.",
]
RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = [
    ("clip", "clip"), ("frames", "frames"), ("contact_frames", "contact frames"), ("old_lift_mm", "old lift"),
    ("new_lift_mm", "new lift"), ("median_mm", "median frame"), ("p10_mm", "10th-pct frame"),
    ("deepest_mm", "deepest frame"), ("contact_p10_mm", "contact frames' 10th pct"),
    ("share_below_10mm", "share > 10 mm deep"), ("flight_frames", "flight frames"),
    ("supported_median_mm", "median supported frame"), ("old_median_mm", "median frame, old lift"),
]  # fmt: skip


def com_height(model: mujoco.MjModel, data: mujoco.MjData) -> float:
    """Height of the character's centre of mass in ``data``'s body poses (after ``mj_kinematics``)."""
    mass = model.body_mass[1:]
    return float(mass @ data.xipos[1:, 2] / mass.sum())


def measure(name: str, model: mujoco.MjModel, data: mujoco.MjData) -> dict:
    clip = load_clip(name)
    lowest, com = np.zeros(clip.num_frames), np.zeros(clip.num_frames)
    for i, q in enumerate(clip.qpos):
        lowest[i] = lowest_point(model, q, data)  # after clip.lift; leaves data's kinematics at q
        com[i] = com_height(model, data)
    flight = np.gradient(np.gradient(com, clip.times), clip.times) < -FREE_FALL
    raw = lowest - clip.lift
    old_lift = max(0.0, -float(raw.min()))
    envelope = np.percentile(raw, ENVELOPE_PERCENTILE)
    contact = raw <= envelope + CONTACT_MARGIN
    mm = lambda x: round(1000.0 * float(x), 1) + 0.0  # noqa: E731  (+ 0.0: no "-0.0")
    return {
        "clip": name, "frames": clip.num_frames, "contact_frames": int(contact.sum()),
        "old_lift_mm": mm(old_lift), "new_lift_mm": mm(clip.lift), "median_mm": mm(np.median(lowest)),
        "p10_mm": mm(np.percentile(lowest, 10)), "deepest_mm": mm(lowest.min()),
        "contact_p10_mm": mm(np.percentile(lowest[contact], 10)),
        "share_below_10mm": round(float((lowest < -0.010).mean()), 2), "flight_frames": int(flight.sum()),
        "supported_median_mm": mm(np.median(lowest[~flight])), "old_median_mm": mm(np.median(raw) + old_lift),
        "lowest_mm": [mm(x) for x in lowest],
    }  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", nargs="+", default=None, help="clip names (default: every clip of the catalogue)")
    p.add_argument("--out", type=Path, default=RESULTS / "clip_floor.md", help="Markdown report")
    p.add_argument("--json", type=Path, default=RESULTS / "clip_floor.json", help="the figures as JSON")
    args = p.parse_args(argv)
    unknown = sorted(set(args.clips or ()) - set(available_clips()))
    if unknown:
        p.error(f"unknown clips {unknown}; available: {' '.join(available_clips())}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    now = datetime.datetime.now().astimezone()
    model = character.load_model()
    data = mujoco.MjData(model)
    rows = [measure(name, model, data) for name in args.clips or available_clips()]
    lines = [
        *report_header(
            "Reference clips against the floor", now,
            f"Lowest point of the character's geoms per frame, mm (negative: below the floor). Old lift: the whole "
            f"clip raised by its deepest frame. New lift (`clip.lift`): the median contact frame on the floor, contact "
            f"frames being those within {1000 * CONTACT_MARGIN:.0f} mm of the {ENVELOPE_PERCENTILE:g}th percentile of "
            f"the frames' lowest points. Frame columns are after the new lift; the last one after the old lift. Flight "
            f"frames: the centre of mass accelerates downward at more than {FREE_FALL / 9.81:g} g (no height decides "
            f"it); the median supported frame is the median over the other frames.",
        ),
        "",
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
        *["| " + " | ".join(str(row[key]) for key, _ in COLUMNS) + " |" for row in rows],
        "",
        *NOTES,
    ]  # fmt: skip
    print("\n".join(lines))
    for path in (args.out, args.json):
        path.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.json.write_text(json.dumps({
        "date": now.isoformat(timespec="seconds"), "args": {k: str(v) for k, v in vars(args).items()},
        "contact_margin_m": CONTACT_MARGIN, "envelope_percentile": ENVELOPE_PERCENTILE, "free_fall_m_s2": FREE_FALL,
        "clips": rows,
    }, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
