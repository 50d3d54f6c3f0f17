"""Motion clips: DeepMimic's clip format, converted to the MuJoCo character and sampled by time.

A clip is loaded by name (``"walk"`` or ``"humanoid3d_walk"``, resolved through ``motions/catalogue.json``)
or by path, converted from DeepMimic's y-up convention to MuJoCo's z-up one, shifted once in height so that
its contact frames stand on the floor, and frozen into a :class:`MotionClip`.  :meth:`MotionClip.sample` gives
the character's ``qpos`` and ``qvel`` at any time, looping ``wrap`` clips with their per-cycle root offset.

The height offset (:attr:`MotionClip.lift`, see :func:`contact_lift`) is decided by the contact frames, not by
the single deepest one: the lowest point of the character's geoms is computed for every frame; the frames whose
lowest point lies within :data:`CONTACT_MARGIN` of the clip's low envelope (the :data:`ENVELOPE_PERCENTILE`-th
percentile of those points, which a few outlier frames do not move) are the frames in contact with the ground;
the clip is raised or lowered so that their median touches the floor.  Flight frames lie above the margin and do
not count; the frames that still penetrate afterwards (the raw clips' feet, hands and knees sink into the floor
by different amounts from frame to frame) stay as they are: the reference is only kinematic.  A start state taken
from the reference can be raised out of the floor on its own with :func:`floor_clearance`.
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from sb3_mimic import character
from sb3_mimic._resources import data_path

FRAME_SIZE = 44  # duration, root position (3), root quaternion (4), 36 joint numbers
#: ``ClipInfo.source`` of a clip loaded from a file that the catalogue does not name.
FILE_SOURCE = "file"
#: Env id of a clip that has no id of its own (``MimicHumanoid-v0`` with ``motion=<path>``).
GENERIC_ENV_ID = "MimicHumanoid-v0"
_DM_QUAT_FIELDS = ("root", *[name for name, kind in character.JOINTS if kind == "ball"])
#: Percentile of a clip's per-frame lowest points taken as its low envelope (a few outlier frames, however deep,
#: do not move it).
ENVELOPE_PERCENTILE = 10.0
#: Metres above the low envelope within which a frame's lowest point makes it a contact frame (default 0.07): wide
#: enough for the frame-to-frame spread of the clips that stay on the ground (the get-ups' rise onto the knees and
#: feet included), narrow enough to leave out a flight phase such as run's.  Each clip's contact frames and floor
#: distances, and why 0.07: ``benchmarks/results/clip_floor.md``.
CONTACT_MARGIN = 0.07


class MotionClipError(ValueError):
    """A motion clip file is malformed or a clip name is unknown."""


@dataclass(frozen=True)
class ClipInfo:
    """One entry of the clip catalogue (``motions/catalogue.json``)."""

    name: str
    """Short name, e.g. ``"walk"``."""
    file: str
    """File name of the clip."""
    source: str
    """Where the file lives: ``"pybullet_data"`` (DeepMimic's clips shipped by pybullet) or ``"motions"``."""
    env_id: str
    """Registered Gymnasium id of the env that imitates this clip."""
    fall_bodies: tuple[str, ...]
    """Bodies whose floor contact ends an episode as a fall."""
    description: str = ""
    mpc: tuple[tuple[str, float | int | bool], ...] = ()
    """Settings of the MPC expert for this clip, overriding its defaults (``(name, value)`` pairs; see
    :meth:`sb3_mimic.experts.MPCSettings.for_clip`)."""

    @property
    def from_catalogue(self) -> bool:
        """``True`` for a catalogue entry; ``False`` for the defaults given to a clip file the catalogue does not name."""
        return self.source != FILE_SOURCE


@dataclass(frozen=True)
class MotionClip:
    """A motion clip converted to the MuJoCo character.  All arrays are read-only.

    Times are in seconds, positions in metres, angles in radians.  ``qpos`` / ``qvel`` follow the MuJoCo
    model's layout (``nq = 43``: root position, root quaternion (w, x, y, z), one quaternion per ball joint,
    one angle per hinge; ``nv = 34``: root linear velocity in the world frame, root angular velocity in the
    root frame, local angular velocities of the ball joints, hinge rates).
    """

    name: str
    """Clip name (catalogue name, or the file stem for a clip loaded by path)."""
    path: str
    """File the clip was read from."""
    loop: bool
    """``True`` for DeepMimic's ``"wrap"`` clips, which repeat; ``False`` for ``"none"`` clips."""
    times: np.ndarray
    """(F,) time of each frame, starting at 0."""
    qpos: np.ndarray
    """(F, nq) generalised positions of each frame, raised by :attr:`lift`."""
    qvel: np.ndarray
    """(F, nv) generalised velocity from frame i to frame i + 1 (``mj_differentiatePos``); the last row repeats
    the one before it."""
    cycle_offset: np.ndarray
    """(3,) horizontal root displacement per cycle, added once per completed loop (zero if not looping).  The
    heading is kept: a clip whose root turns over a cycle restarts each cycle at its first frame's heading."""
    lift: float
    """Metres added to the root height of every frame of the file (negative: the clip was lowered) so that the
    median contact frame touches the floor (:func:`contact_lift`).  Other frames may still penetrate the floor or
    float a little above it; :func:`floor_clearance` tells how far a given pose must be raised."""
    info: ClipInfo = field(compare=False)
    """The clip's catalogue entry (fall bodies, env id, MPC settings), or :func:`file_clip_info` defaults for a
    file the catalogue does not name: resolved once, when the clip is loaded."""
    _model: mujoco.MjModel = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.times)
        if self.qpos.shape != (n, self._model.nq) or self.qvel.shape != (n, self._model.nv):
            raise ValueError("MotionClip arrays do not match the model")
        for name in ("times", "qpos", "qvel", "cycle_offset"):
            getattr(self, name).flags.writeable = False
        object.__setattr__(self, "_time_list", self.times.tolist())  # bisect on a list beats numpy on scalars

    @property
    def env_id(self) -> str:
        """The registered env id that imitates exactly this clip: the catalogue's id when the clip was read from
        the catalogue's own file, else :data:`GENERIC_ENV_ID` (which needs ``motion=<path>``)."""
        if self.info.from_catalogue and Path(self.path) == _source_dir(self.info.source) / self.info.file:
            return self.info.env_id
        return GENERIC_ENV_ID

    @property
    def duration(self) -> float:
        """Length of one pass through the clip, seconds."""
        return float(self.times[-1])

    @property
    def num_frames(self) -> int:
        return len(self.times)

    def phase(self, time: float) -> float:
        """Fraction of the clip played at ``time``, in [0, 1)."""
        if self.loop:
            return (time / self.duration) % 1.0
        return min(max(time / self.duration, 0.0), 1.0)

    def sample(self, time: float, qpos: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The character's ``qpos`` and ``qvel`` at ``time`` seconds.

        Quaternions are interpolated along the geodesic (slerp), everything else linearly; a looping clip
        played past its end adds the per-cycle root offset once per completed cycle and keeps the heading.
        A non-looping clip holds its end poses, at rest, outside [0, duration).

        :param time: seconds from the clip's start (any real for looping clips)
        :param qpos: optional output array of shape (nq,)
        :return: ``(qpos, qvel)``
        """
        cycles = 0
        if self.loop:
            cycles = math.floor(time / self.duration)
            local = time - cycles * self.duration
        else:
            local = min(max(time, 0.0), self.duration)
        i = min(max(bisect.bisect_right(self._time_list, local) - 1, 0), len(self.times) - 2)
        out = np.empty(self._model.nq) if qpos is None else qpos
        # integrating the segment's constant velocity is exactly slerp for quaternions and lerp otherwise
        out[:] = self.qpos[i]
        mujoco.mj_integratePos(self._model, out, self.qvel[i], local - self.times[i])
        if cycles:
            out[:3] += cycles * self.cycle_offset
        if not self.loop and not 0.0 <= time < self.duration:
            return out, np.zeros(self._model.nv)  # held at its first or last pose
        return out, self.qvel[i].copy()


# --------------------------------------------------------------------------------------------------------
# catalogue and name resolution


@functools.lru_cache(maxsize=1)
def _raw_catalogue() -> dict[str, Any]:
    return json.loads(data_path("motions", "catalogue.json").read_text())


def default_fall_bodies() -> tuple[str, ...]:
    """The catalogue's ``default_fall_bodies``: every body but the feet."""
    return tuple(_raw_catalogue()["default_fall_bodies"])


def file_clip_info(path: str | Path) -> ClipInfo:
    """The settings of a clip file the catalogue does not name: its stem as name, :data:`GENERIC_ENV_ID`, the
    catalogue's default fall bodies and the MPC expert's default settings."""
    path = Path(path)
    return ClipInfo(name=path.stem.removeprefix("humanoid3d_"), file=path.name, source=FILE_SOURCE,
                    env_id=GENERIC_ENV_ID, fall_bodies=default_fall_bodies(), description=f"clip file {path}")


@functools.lru_cache(maxsize=1)
def catalogue() -> dict[str, ClipInfo]:
    """The clip catalogue, keyed by short name."""
    raw = _raw_catalogue()
    default_fall = default_fall_bodies()
    clips = {}
    for name, entry in raw["clips"].items():
        clips[name] = ClipInfo(
            name=name,
            file=entry["file"],
            source=entry["source"],
            env_id=entry["env_id"],
            fall_bodies=tuple(entry.get("fall_bodies", default_fall)),
            description=entry.get("description", ""),
            mpc=tuple(sorted(entry.get("mpc", {}).items())),
        )
    return clips


def available_clips() -> list[str]:
    """Short names of every clip in the catalogue."""
    return sorted(catalogue())


def _source_dir(source: str) -> Path:
    if source == "pybullet_data":
        try:
            import pybullet_data
        except ImportError as err:  # pragma: no cover - pybullet is a declared dependency
            raise MotionClipError(
                "DeepMimic's clips ship in the 'pybullet' package, which is not installed: pip install pybullet"
            ) from err
        return Path(pybullet_data.getDataPath()) / "data" / "motions"
    if source == "motions":
        return data_path("motions")
    raise MotionClipError(f"catalogue names an unknown clip source {source!r}")


def clip_info(name: str) -> ClipInfo:
    """The catalogue entry for ``name`` (``"walk"`` or ``"humanoid3d_walk"``)."""
    key = name.removeprefix("humanoid3d_").removesuffix(".txt")
    clips = catalogue()
    if key not in clips:
        raise MotionClipError(
            f"unknown motion clip {name!r}. Available clips: {', '.join(available_clips())} "
            "(with or without the 'humanoid3d_' prefix), or give the path of a DeepMimic clip file."
        )
    return clips[key]


def _resolve(name_or_path: str | Path) -> tuple[Path, ClipInfo]:
    """A clip name or path as ``(file path, catalogue entry)``.  A name resolves through the catalogue; a file
    gets its catalogue entry only when it is the catalogue's own file, and :func:`file_clip_info` anywhere else
    (a copy saved as ``/tmp/x/humanoid3d_run.txt`` is a clip file like any other, not run)."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    looks_like_path = isinstance(name_or_path, Path) or path.suffix in (".txt", ".json") or "/" in text
    if looks_like_path:
        if not path.is_file():
            key = path.stem.removeprefix("humanoid3d_")
            if "/" in text or os.sep in text:  # an explicit path (./walk.txt, /data/walk.txt): not the catalogue's
                found = "is a directory" if path.is_dir() else "does not exist"
                hint = f", or name the catalogue's clip: {key!r}" if key in catalogue() else ""
                raise MotionClipError(f"motion clip file {text!r} {found}; check the path{hint}")
            if path.parent == Path(".") and key in catalogue():
                info = catalogue()[key]
                return _source_dir(info.source) / info.file, info
            raise MotionClipError(f"motion clip file {text!r} does not exist")
        info = catalogue().get(path.stem.removeprefix("humanoid3d_"))
        if info is None or (_source_dir(info.source) / info.file).resolve() != path.resolve():
            info = file_clip_info(path)
        return path.resolve(), info
    info = clip_info(text)
    return _source_dir(info.source) / info.file, info


# --------------------------------------------------------------------------------------------------------
# parsing and conversion


def _dm_quat_to_mujoco(q: np.ndarray) -> np.ndarray:
    """DeepMimic (w, x, y, z) in y-up to MuJoCo z-up: (w, x, -z, y)."""
    return np.stack([q[..., 0], q[..., 1], -q[..., 3], q[..., 2]], axis=-1)


def _dm_vec_to_mujoco(v: np.ndarray) -> np.ndarray:
    """DeepMimic (x, y, z) in y-up to MuJoCo z-up: (x, -z, y)."""
    return np.stack([v[..., 0], -v[..., 2], v[..., 1]], axis=-1)


def parse_frames(path: Path) -> tuple[bool, np.ndarray]:
    """Read and validate a DeepMimic clip file: ``(loop, frames)`` with frames of shape (F, 44)."""
    try:
        raw: Any = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise MotionClipError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
            "a DeepMimic clip is a JSON object with 'Loop' and 'Frames'"
        ) from err
    except OSError as err:
        raise MotionClipError(f"{path}: cannot read the clip file ({err.strerror})") from err
    if not isinstance(raw, dict) or "Frames" not in raw:
        raise MotionClipError(f"{path}: expected a JSON object with a 'Frames' list (DeepMimic clip format)")
    loop = raw.get("Loop", "wrap")
    if loop not in ("wrap", "none"):
        raise MotionClipError(f"{path}: 'Loop' must be \"wrap\" or \"none\", got {loop!r}")
    frames = raw["Frames"]
    if not isinstance(frames, list) or len(frames) < 2:
        n = len(frames) if isinstance(frames, list) else 0
        raise MotionClipError(f"{path}: a clip needs at least 2 frames in 'Frames', found {n}")
    for i, frame in enumerate(frames):
        if not isinstance(frame, list) or len(frame) != FRAME_SIZE:
            size = len(frame) if isinstance(frame, list) else type(frame).__name__
            raise MotionClipError(
                f"{path}: frame {i} has {size} numbers; each frame needs {FRAME_SIZE} "
                "(duration, root position 3, root quaternion 4, 36 joint values for the humanoid3d character)"
            )
    try:
        data = np.asarray(frames, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise MotionClipError(f"{path}: every frame value must be a number ({err})") from err
    bad = np.argwhere(~np.isfinite(data))
    if len(bad):
        i, j = bad[0]
        raise MotionClipError(f"{path}: frame {i} holds a non-finite value (NaN or inf) at index {j}; fix or drop it")
    durations = data[:-1, 0]
    if (durations <= 0).any():
        i = int(np.argmax(durations <= 0))
        raise MotionClipError(
            f"{path}: frame {i} has duration {durations[i]:g} s; every frame but the last needs a positive "
            "duration (the time to the next frame)"
        )
    return loop == "wrap", data


def _frames_to_qpos(path: Path, data: np.ndarray, model: mujoco.MjModel) -> np.ndarray:
    index = character.character_index(model)
    qpos = np.zeros((len(data), model.nq))
    qpos[:, 0:3] = _dm_vec_to_mujoco(data[:, 1:4])
    col = 4
    quats = {"root": data[:, col : col + 4]}
    col += 4
    hinge_cols = []
    for name, kind in character.JOINTS:
        if kind == "ball":
            quats[name] = data[:, col : col + 4]
            col += 4
        else:
            hinge_cols.append(col)
            col += 1
    for slot, name in enumerate(_DM_QUAT_FIELDS):
        q = quats[name]
        norms = np.linalg.norm(q, axis=1)
        if (norms < 1e-6).any():
            i = int(np.argmax(norms < 1e-6))
            raise MotionClipError(
                f"{path}: frame {i} has a zero quaternion for joint '{name}'; quaternions must be (w, x, y, z) "
                "with non-zero norm (the identity is 1, 0, 0, 0)"
            )
        qpos[:, index.quat_qpos[slot]] = _dm_quat_to_mujoco(q / norms[:, None])
    qpos[:, index.hinge_qpos] = data[:, hinge_cols]
    return qpos


class FloorProbe:
    """The lowest point of the character's geoms above the floor, for one model (its shapes read once).

    :param model: the character's model
    """

    def __init__(self, model: mujoco.MjModel) -> None:
        self.model = model
        self.geoms = np.flatnonzero(model.geom_bodyid != 0)  # the floor plane is the world's
        kind = model.geom_type[self.geoms]
        size = model.geom_size[self.geoms]
        # lowest point = z - |up row of the rotation| . reach, with the reach of each shape along its local axes;
        # any other shape falls back to its bounding sphere (the character has none)
        self.radius = np.where(np.isin(kind, [mujoco.mjtGeom.mjGEOM_SPHERE, mujoco.mjtGeom.mjGEOM_CAPSULE]), size[:, 0],
                               np.where(kind == mujoco.mjtGeom.mjGEOM_BOX, 0.0, model.geom_rbound[self.geoms]))
        self.reach = np.zeros((len(self.geoms), 3))
        capsule, box = kind == mujoco.mjtGeom.mjGEOM_CAPSULE, kind == mujoco.mjtGeom.mjGEOM_BOX
        self.reach[capsule, 2] = size[capsule, 1]
        self.reach[box] = size[box]

    def lowest(self, data: mujoco.MjData) -> float:
        """Height (m) of the lowest geom point in ``data``'s current geom poses (negative: below the floor)."""
        up = np.abs(data.geom_xmat[self.geoms, 6:9])
        low = data.geom_xpos[self.geoms, 2] - self.radius - np.einsum("gi,gi->g", up, self.reach)
        return float(low.min(initial=np.inf))

    def clearance(self, qpos: np.ndarray, data: mujoco.MjData) -> float:
        """How far pose ``qpos`` must be raised so that no geom is below the floor (``data`` is scratch)."""
        data.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, data)
        return max(0.0, -self.lowest(data))


def _lowest_point(model: mujoco.MjModel, data: mujoco.MjData) -> float:
    """Lowest point of the character's geoms (the floor plane excluded), from ``data``'s geom poses."""
    return FloorProbe(model).lowest(data)


def lowest_point(model: mujoco.MjModel, qpos: np.ndarray, data: mujoco.MjData | None = None) -> float:
    """Height (m) of the lowest point of the character's geoms in pose ``qpos`` (negative: below the floor).

    :param model: the character's model (:func:`sb3_mimic.character.load_model` or an env's ``model``)
    :param qpos: (nq,) generalised positions
    :param data: optional scratch ``MjData`` of ``model``; its ``qpos`` and kinematics are overwritten (pass one to
        avoid allocating a new one per call; never pass the data of a running simulation)
    """
    scratch = mujoco.MjData(model) if data is None else data
    scratch.qpos[:] = qpos
    mujoco.mj_kinematics(model, scratch)
    return _lowest_point(model, scratch)


def floor_clearance(model: mujoco.MjModel, qpos: np.ndarray, data: mujoco.MjData | None = None) -> float:
    """Metres that pose ``qpos`` must be raised (added to the root height, ``qpos[2]``) so that no geom of the
    character is below the floor: the depth of its deepest penetration, 0.0 if nothing penetrates.

    Meant for start states taken from a reference clip, whose frames may sink into the floor
    (:attr:`MotionClip.lift`)::

        qpos[2] += floor_clearance(model, qpos)

    :param model: the character's model
    :param qpos: (nq,) generalised positions (not modified)
    :param data: optional scratch ``MjData`` of ``model``, overwritten (see :func:`lowest_point`)
    """
    return max(0.0, -lowest_point(model, qpos, data))


def contact_lift(lowest: np.ndarray) -> float:
    """The height offset (m, to add to the root) that puts a clip's median contact frame on the floor.

    The contact frames are those whose lowest point is at most :data:`CONTACT_MARGIN` above the clip's low
    envelope, the :data:`ENVELOPE_PERCENTILE`-th percentile of ``lowest``; the offset is minus the median of their
    lowest points (the offset that minimises their mean distance to the floor).

    A share of the frames therefore stays under the floor, by choice: a clip's contact heights spread from frame to
    frame (feet, hands and knees sink by different amounts), so no single offset puts every contact frame on it, and
    half of them end at or below it.  Raising the clip until no frame penetrates (the old rule) would float the
    typical frame instead; the env lifts a start state that would penetrate on its own (:func:`floor_clearance`), and
    the reference is only kinematic.  Each clip's figures (the spread, the share of frames more than 10 mm under the
    floor, how deep the contact frames go): ``benchmarks/results/clip_floor.md``.

    :param lowest: (F,) lowest point of the character's geoms in each frame, before any offset (m)
    """
    lowest = np.asarray(lowest, dtype=float)
    envelope = np.percentile(lowest, ENVELOPE_PERCENTILE)
    return -float(np.median(lowest[lowest <= envelope + CONTACT_MARGIN]))


def _clip_from_frames(info: ClipInfo, path: Path, loop: bool, data: np.ndarray) -> MotionClip:
    model = character.load_model()
    qpos = _frames_to_qpos(path, data, model)
    mdata = mujoco.MjData(model)
    lift = contact_lift(np.array([lowest_point(model, frame, mdata) for frame in qpos]))
    qpos[:, 2] += lift
    times = np.concatenate([[0.0], np.cumsum(data[:-1, 0])])
    qvel = np.zeros((len(data), model.nv))
    for i in range(len(data) - 1):
        mujoco.mj_differentiatePos(model, qvel[i], times[i + 1] - times[i], qpos[i], qpos[i + 1])
    qvel[-1] = qvel[-2]
    offset = np.zeros(3)
    if loop:
        offset[:2] = qpos[-1, :2] - qpos[0, :2]
    return MotionClip(
        name=info.name, path=str(path), loop=loop, times=times, qpos=qpos, qvel=qvel, cycle_offset=offset, lift=lift,
        info=info, _model=model,
    )


@functools.lru_cache(maxsize=64)
def _load_cached(info: ClipInfo, path: str, mtime: float) -> MotionClip:
    loop, data = parse_frames(Path(path))
    return _clip_from_frames(info, Path(path), loop, data)


def load_clip(name_or_path: str | Path | MotionClip) -> MotionClip:
    """Load a DeepMimic motion clip for the humanoid3d character.

    :param name_or_path: a catalogue name (``"walk"``, ``"humanoid3d_walk"``), the path of a clip file, or a
        loaded clip (returned as it is)
    :return: the converted, height-adjusted, frozen clip (cached: loading the same file twice returns the same object)
    :raises MotionClipError: unknown name, missing file or malformed content
    """
    if isinstance(name_or_path, MotionClip):
        return name_or_path
    path, info = _resolve(name_or_path)
    return _load_cached(info, str(path), path.stat().st_mtime)
