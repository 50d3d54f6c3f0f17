"""Single-core throughput of the imitation env against its raw physics bound and gymnasium's Humanoid-v5.

What is measured, all in one process pinned to one CPU core (thread pools of numpy's BLAS set to one thread,
torch never imported):

1. **ours**: ``gymnasium.make(ENV)`` (default ``MimicHumanoidWalk-v0``, with gymnasium's usual wrappers) stepped
   with uniformly random actions in [-1, 1]. The actions are drawn with numpy before timing starts, so sampling
   is not measured. The env is reset whenever an episode terminates or is truncated and the reset time counts in
   the total: the headline figure is "steps/s incl. resets"; the number of resets is reported beside it.
2. **raw bound**: the physics alone for the same model. A fresh ``mujoco.MjData`` of ``env.unwrapped.model``
   starts from the env's reference pose (qpos/qvel copied after one ``env.reset()``) and is advanced with bare
   ``mujoco.mj_step(model, data, nstep=frame_skip)`` calls under a constant ``ctrl`` (the env's own ctrl for the
   first random action), i.e. the same simulated time per call as one env step. Every 30 calls (1 s simulated at
   30 Hz) the initial state is copied back in, so the contact load stays comparable to the env's episodes.
   Reported as "env steps/s equivalent" = calls per second.
3. **ours / raw bound**: how much of the physics-only speed the env keeps (target >= 0.7).
4. **Humanoid-v5**: ``gymnasium.make("Humanoid-v5")`` with random actions and resets, as steps/s and as simulated
   seconds per wall-clock second (steps/s x dt), beside ours (ours x our dt). Target: ours >= Humanoid-v5 in
   steps/s (our step covers more simulated time at 30 Hz control, so the simulated-time ratio is larger still).

The three measurements are interleaved in rounds (ours, raw, Humanoid-v5, then again) of ``--seconds`` each,
after a short warm-up; each quantity is the median over the rounds, and each ratio is the median of the
per-round ratios, so that machine noise affects every figure alike.

Run from the repository root::

    .venv/bin/python benchmarks/env_throughput.py
    .venv/bin/python benchmarks/env_throughput.py --seconds 1 --rounds 3 --json benchmarks/results/env_throughput.json

The exit status is 0 whatever the figures: this is a benchmark, not a test; PASS/FAIL lines are informative.
"""

from __future__ import annotations

import os

# one thread for every numerical library: must be set before numpy is imported
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"  # headless; no rendering happens here, but the envs import the GL backend

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout, installed or not
import sb3_mimic  # noqa: E402  (registers the MimicHumanoid ids)

RATIO_THRESHOLD = 0.7  # ours / raw bound
REFERENCE_ENV = "Humanoid-v5"
RECOPY_EVERY = 30  # raw bound: calls between copies of the initial state (1 s simulated at 30 Hz)
N_ACTIONS = 8192  # pre-generated random actions, used cyclically
WARMUP_SECONDS = 0.3


@dataclass
class Measurement:
    """One timed run of one subject."""

    steps: int
    seconds: float
    resets: int = 0
    reset_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.steps / self.seconds

    @property
    def rate_without_resets(self) -> float:
        return self.steps / (self.seconds - self.reset_seconds)


class EnvRunner:
    """Steps a gymnasium env with pre-generated random actions, resetting when an episode ends."""

    def __init__(self, env_id: str, seed: int) -> None:
        self.env = gymnasium.make(env_id)
        space = self.env.action_space
        rng = np.random.default_rng(seed)
        self.actions = rng.uniform(space.low, space.high, size=(N_ACTIONS, *space.shape)).astype(space.dtype)
        self.env.reset(seed=seed)
        self.i = 0
        self.dt = float(self.env.unwrapped.dt)

    def run(self, seconds: float) -> Measurement:
        env, actions, n = self.env, self.actions, len(self.actions)
        clock = time.perf_counter
        i, steps, resets, reset_seconds = self.i, 0, 0, 0.0
        start = clock()
        deadline = start + seconds
        while True:
            _, _, terminated, truncated, _ = env.step(actions[i])
            i = (i + 1) % n
            steps += 1
            now = clock()
            if terminated or truncated:
                env.reset()
                resets += 1
                after = clock()
                reset_seconds += after - now
                now = after
            if now >= deadline:
                break
        self.i = i
        return Measurement(steps, now - start, resets, reset_seconds)


class RawRunner:
    """Bare ``mj_step`` calls of ``frame_skip`` substeps on the env's model, from the env's reference pose."""

    def __init__(self, env: gymnasium.Env, first_action: np.ndarray) -> None:
        base = env.unwrapped
        self.model = base.model
        self.frame_skip = int(base.frame_skip)
        env.reset(seed=0)
        self.qpos0 = base.data.qpos.copy()
        self.qvel0 = base.data.qvel.copy()
        env.step(first_action)
        self.ctrl = base.data.ctrl.copy()  # the env's own ctrl mapping, held constant
        self.data = mujoco.MjData(self.model)
        self.calls = 0
        self._restore()
        env.reset()  # leave the env at the start of a fresh episode

    def _restore(self) -> None:
        d = self.data
        mujoco.mj_resetData(self.model, d)
        d.qpos[:] = self.qpos0
        d.qvel[:] = self.qvel0
        d.ctrl[:] = self.ctrl

    def run(self, seconds: float) -> Measurement:
        m, d, nstep, step = self.model, self.data, self.frame_skip, mujoco.mj_step
        clock = time.perf_counter
        calls = 0
        start = clock()
        deadline = start + seconds
        while True:
            if self.calls == RECOPY_EVERY:
                self._restore()
                self.calls = 0
            step(m, d, nstep=nstep)
            self.calls += 1
            calls += 1
            now = clock()
            if now >= deadline:
                break
        return Measurement(calls, now - start)


def pin_to_one_core() -> int:
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement per round (default 2)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--env", default="MimicHumanoidWalk-v0", help="env id to measure (default MimicHumanoidWalk-v0)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures as JSON here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random actions and the first reset")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1:
        parser.error("--seconds must be > 0 and --rounds >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpu = pin_to_one_core()

    ours = EnvRunner(args.env, args.seed)
    raw = RawRunner(ours.env, ours.actions[0])
    ref = EnvRunner(REFERENCE_ENV, args.seed)
    subjects = {"ours": ours, "raw": raw, "ref": ref}

    for runner in subjects.values():
        runner.run(WARMUP_SECONDS)

    rounds: list[dict[str, Measurement]] = []
    for _ in range(args.rounds):
        rounds.append({name: runner.run(args.seconds) for name, runner in subjects.items()})

    def rates(name: str) -> list[float]:
        return [r[name].rate for r in rounds]

    ours_rate, raw_rate, ref_rate = median(rates("ours")), median(rates("raw")), median(rates("ref"))
    ratio_raw = median([r["ours"].rate / r["raw"].rate for r in rounds])
    ratio_ref = median([r["ours"].rate / r["ref"].rate for r in rounds])
    ours_resets = sum(r["ours"].resets for r in rounds)
    ref_resets = sum(r["ref"].resets for r in rounds)
    ours_steps = sum(r["ours"].steps for r in rounds)
    ref_steps = sum(r["ref"].steps for r in rounds)
    torch_loaded = "torch" in sys.modules

    figures = {
        "env": args.env,
        "reference_env": REFERENCE_ENV,
        "cpu": cpu,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "torch_imported": torch_loaded,
        "versions": {
            "python": platform.python_version(),
            "mujoco": mujoco.__version__,
            "gymnasium": gymnasium.__version__,
            "numpy": np.__version__,
            "sb3_mimic": sb3_mimic.__version__,
        },
        "machine": platform.processor() or platform.machine(),
        "ours": {
            "dt": ours.dt,
            "frame_skip": raw.frame_skip,
            "steps_per_s": ours_rate,
            "steps_per_s_excl_resets": median([r["ours"].rate_without_resets for r in rounds]),
            "sim_s_per_wall_s": ours_rate * ours.dt,
            "steps": ours_steps,
            "resets": ours_resets,
        },
        "raw_bound": {"env_steps_per_s": raw_rate, "sim_s_per_wall_s": raw_rate * ours.dt, "recopy_every": RECOPY_EVERY},
        "reference": {
            "dt": ref.dt,
            "steps_per_s": ref_rate,
            "sim_s_per_wall_s": ref_rate * ref.dt,
            "steps": ref_steps,
            "resets": ref_resets,
        },
        "ratio_ours_raw": ratio_raw,
        "ratio_ours_reference": ratio_ref,
        "thresholds": {"ratio_ours_raw": RATIO_THRESHOLD, "ratio_ours_reference": 1.0},
        "pass": {"ratio_ours_raw": ratio_raw >= RATIO_THRESHOLD, "ratio_ours_reference": ratio_ref >= 1.0},
        "per_round": [{name: asdict(m) for name, m in r.items()} for r in rounds],
    }
    print_report(figures)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
    for runner in (ours, ref):
        runner.env.close()
    return 0


def print_report(f: dict) -> None:
    o, w, h = f["ours"], f["raw_bound"], f["reference"]
    print(
        f"env throughput: cpu {f['cpu']} only, {f['rounds']} interleaved rounds x {f['seconds']:g} s, medians"
        f"  (mujoco {f['versions']['mujoco']}, gymnasium {f['versions']['gymnasium']})"
    )
    if f["torch_imported"]:
        print("warning: torch was imported; its thread pool may disturb the single-core figures")
    name_w = max(len(f["env"]), len(f["reference_env"]), len("raw mj_step bound")) + 2
    print(f"{'':{name_w}}{'dt (s)':>9}{'steps/s':>10}{'sim s/s':>9}{'resets':>8}{'steps/ep':>9}")
    rows = [
        (f["env"], o["dt"], o["steps_per_s"], o["sim_s_per_wall_s"], o["resets"], o["steps"]),
        ("raw mj_step bound", o["dt"], w["env_steps_per_s"], w["sim_s_per_wall_s"], None, None),
        (f["reference_env"], h["dt"], h["steps_per_s"], h["sim_s_per_wall_s"], h["resets"], h["steps"]),
    ]
    for name, dt, rate, sim, resets, steps in rows:
        extra = f"{resets:>8d}{steps / max(resets, 1):>9.1f}" if resets is not None else f"{'-':>8}{'-':>9}"
        print(f"{name:{name_w}}{dt:>9.4f}{rate:>10.0f}{sim:>9.1f}{extra}")
    print(
        f"{f['env']}: {o['steps_per_s_excl_resets']:.0f} steps/s excl. resets "
        f"(frame_skip {o['frame_skip']}, raw bound = calls of mj_step(nstep={o['frame_skip']}) per s)"
    )
    checks = [
        ("ours / raw bound", f["ratio_ours_raw"], f["thresholds"]["ratio_ours_raw"], f["pass"]["ratio_ours_raw"]),
        (
            f"ours / {f['reference_env']} (steps/s)",
            f["ratio_ours_reference"],
            f["thresholds"]["ratio_ours_reference"],
            f["pass"]["ratio_ours_reference"],
        ),
    ]
    for label, value, threshold, ok in checks:
        print(f"{label:<32}{value:>6.3f}  (>= {threshold:.2f})  {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    sys.exit(main())
