"""Learning curves of training runs from their ``evaluations.csv`` files.

Each run directory holds an ``evaluations.csv`` with one row per evaluation and at least the columns
``env_steps``, ``wall_time_s``, ``normalized_return`` and ``mean_survival_s`` (time to fall, s); ``mpjpe_mm``
adds the tracking-error panel and ``std_normalized_return``, ``std_survival_s`` and ``std_mpjpe_mm`` (the spread
over each evaluation's episodes, written since they exist) a band of one std around each curve.  Older files
without them still plot, without the band.  The axes keep their natural ranges (normalised return 0 to 1, time to
fall 0 to the 20 s episode limit, MPJPE from 0) unless the data exceed them, so evaluation noise is not drawn as
a trend.  A run's ``run.json`` names its clip; runs of different clips in one figure raise a
:class:`MixedClipsWarning`.

Figures are drawn with matplotlib's Agg canvas directly, so no display is needed and pyplot's global state (and
backend) is left alone.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sb3_mimic._util import temp_sibling

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "EPISODE_LIMIT_S",
    "EVALUATIONS_FILE",
    "REQUIRED_COLUMNS",
    "MixedClipsWarning",
    "learning_curves_figure",
    "load_evaluations",
    "plot_learning_curves",
    "run_clip",
]

EVALUATIONS_FILE = "evaluations.csv"
RUN_FILE = "run.json"
REQUIRED_COLUMNS = ("env_steps", "wall_time_s", "normalized_return", "mean_survival_s")
#: The registered envs' episode limit (600 steps at 30 Hz): the top of the time-to-fall axis.
EPISODE_LIMIT_S = 20.0

#: The panels' rows: (column, axis label, natural range, std column).  ``None`` as the top: from the data.
_ROWS = (
    ("normalized_return", "normalised return per step", (0.0, 1.0), "std_normalized_return"),
    ("mean_survival_s", "time to fall (s)", (0.0, EPISODE_LIMIT_S), "std_survival_s"),
    ("mpjpe_mm", "MPJPE (mm)", (0.0, None), "std_mpjpe_mm"),
)
_TITLES = {"normalized_return": "normalised return", "mean_survival_s": "time to fall", "mpjpe_mm": "MPJPE"}


class MixedClipsWarning(UserWarning):
    """Runs that imitate different clips share one plot: their curves are not comparable."""


def _csv_path(run: str | os.PathLike) -> Path:
    run = Path(run).expanduser()
    return run if run.suffix.lower() == ".csv" else run / EVALUATIONS_FILE


def _run_label(run: str | os.PathLike) -> str:
    run = Path(run).expanduser()
    run = run.parent if run.suffix.lower() == ".csv" else run
    return run.resolve().name or str(run)


def load_evaluations(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """The columns of a run's ``evaluations.csv``, as arrays (float where every value is numeric).

    :param run_dir: a run directory (or the CSV file itself)
    :raises FileNotFoundError: no ``evaluations.csv`` there
    :raises ValueError: a column of :data:`REQUIRED_COLUMNS` is missing, or one of them holds a non-number
    """
    path = _csv_path(run_dir)
    if not path.is_file():
        raise FileNotFoundError(
            f"no evaluation log at {path}: expected the run directory to contain {EVALUATIONS_FILE} "
            "(written during training, one row per evaluation)"
        )
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path} is empty; expected a header with the columns {', '.join(REQUIRED_COLUMNS)}")
        header = [h.strip() for h in header]
        rows = [row for row in reader if any(cell.strip() for cell in row)]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}; it has {', '.join(header)}")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"{path} line {i + 2} has {len(row)} fields but the header has {len(header)}")
    data: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        cells = [row[j].strip() for row in rows]
        try:
            data[name] = np.array([float(c) if c else np.nan for c in cells], dtype=np.float64)
        except ValueError as err:
            if name in REQUIRED_COLUMNS:
                raise ValueError(f"{path}: column {name} must hold numbers ({err})") from err
            data[name] = np.array(cells, dtype=str)
    return data


def run_clip(run_dir: str | os.PathLike) -> str | None:
    """The name of the clip a run imitates, from its ``run.json`` (``env_kwargs["motion"]``, else the registered
    ``motion`` of its ``env_id``); ``None`` when the run has no readable ``run.json``.

    :param run_dir: a run directory (or its ``evaluations.csv``)
    """
    import gymnasium

    import sb3_mimic  # noqa: F401  (registers the env ids)
    from sb3_mimic.motion import load_clip

    run = Path(run_dir).expanduser()
    run = run.parent if run.suffix.lower() == ".csv" else run
    try:
        config = json.loads((run / RUN_FILE).read_text())
        env_id, env_kwargs = config["env_id"], dict(config.get("env_kwargs") or {})
    except (OSError, ValueError, KeyError, TypeError):
        return None
    motion = env_kwargs.get("motion")
    if motion is None:
        try:
            motion = gymnasium.spec(env_id).kwargs.get("motion", "walk")  # MimicHumanoid-v0's default clip
        except gymnasium.error.Error:
            return str(env_id)  # not one of ours: the env id stands for the task
    try:
        return load_clip(motion).name
    except (OSError, ValueError):  # a clip file that has gone since: name it as the catalogue would
        return Path(str(motion)).stem.removeprefix("humanoid3d_")


def _check_clips(run_dirs: Sequence[str | os.PathLike], labels: Sequence[str]) -> list[str]:
    """The clips of the runs that name one; warns (:class:`MixedClipsWarning`) if they differ."""
    clips = [(label, clip) for label, clip in zip(labels, (run_clip(r) for r in run_dirs), strict=True) if clip]
    names = sorted({clip for _, clip in clips})
    if len(names) > 1:
        runs = ", ".join(f"{label} ({clip})" for label, clip in clips)
        warnings.warn(
            f"runs of different clips share this plot: {runs}; their returns, times to fall and MPJPE are not "
            "comparable across clips",
            MixedClipsWarning,
            stacklevel=3,
        )
    return names


def _limits(low: float, high: float | None, values: list[np.ndarray]) -> tuple[float, float]:
    """The axis range: the natural ``(low, high)`` widened to the finite data, with a small margin."""
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    lo = min(low, float(finite.min())) if finite.size else low
    hi_data = float(finite.max()) if finite.size else None
    if high is None:
        hi = hi_data if hi_data is not None and hi_data > lo else lo + 1.0
    else:
        hi = max(high, hi_data) if hi_data is not None else high
    pad = 0.03 * (hi - lo)
    return lo - pad, hi + pad


def learning_curves_figure(
    run_dirs: Sequence[str | os.PathLike] | str | os.PathLike,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (11.0, 10.5),
    dpi: int = 120,
    wall_offsets_s: Sequence[float] | None = None,
) -> Figure:
    """The learning-curve figure of :func:`plot_learning_curves`, not yet saved (a matplotlib ``Figure`` on an
    Agg canvas: ``fig.axes`` holds the six panels, row by row).

    Rows: normalised return, time to fall (s), MPJPE (mm); columns: against env steps and against wall time
    (min).  One line per run (mean over each evaluation's episodes, one marker per evaluation) and, where the CSV
    has the ``std_*`` column, a translucent band of +/- one std over the episodes, cut to the quantity's range
    (normalised return 0 to 1, times and errors from 0).  A run without ``mpjpe_mm`` is left out of that row.

    Arguments as in :func:`plot_learning_curves`.
    :raises FileNotFoundError: a run without ``evaluations.csv``
    :raises ValueError: bad labels or offsets, or a malformed CSV
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    run_dirs = list(run_dirs)
    if not run_dirs:
        raise ValueError("give at least one run directory")
    if labels is None:
        labels = [_run_label(r) for r in run_dirs]
    else:
        labels = [str(label) for label in labels]
        if len(labels) != len(run_dirs):
            raise ValueError(f"got {len(labels)} labels for {len(run_dirs)} runs")
    runs = [load_evaluations(r) for r in run_dirs]  # all errors before any drawing
    offsets = list(wall_offsets_s) if wall_offsets_s is not None else [0.0] * len(runs)
    if len(offsets) != len(runs):
        raise ValueError(f"got {len(offsets)} wall-time offsets for {len(runs)} runs")
    for data, offset in zip(runs, offsets, strict=True):
        data["wall_time_s"] = data["wall_time_s"] + float(offset)
    clips = _check_clips(run_dirs, labels)

    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(_ROWS), 2, sharex="col", sharey="row")
    colors = [f"C{i % 10}" for i in range(len(runs))]
    shown: dict[str, list[np.ndarray]] = {name: [] for name, *_ in _ROWS}
    banded = False
    for data, label, color in zip(runs, labels, colors, strict=True):
        order = np.argsort(data["env_steps"], kind="stable")
        for row, (y_name, _, (low, high), std_name) in enumerate(_ROWS):
            if y_name not in data or data[y_name].dtype.kind != "f":
                continue
            y = data[y_name][order]
            std = data.get(std_name)
            band = None
            if std is not None and std.dtype.kind == "f" and np.isfinite(std).any():
                top = math.inf if high is None else max(high, float(np.nanmax(y)) if np.isfinite(y).any() else high)
                band = (np.clip(y - std[order], low, top), np.clip(y + std[order], low, top))
                shown[y_name] += list(band)
            shown[y_name].append(y)
            for col, x_name in enumerate(("env_steps", "wall_time_s")):
                x = data[x_name][order] / (60.0 if x_name == "wall_time_s" else 1.0)
                ax = axes[row, col]
                ax.plot(x, y, color=color, marker="o", markersize=3, linewidth=1.5, label=label)
                if band is not None:
                    ax.fill_between(x, *band, color=color, alpha=0.2, linewidth=0, label=f"{label} +/- 1 std")
                    banded = True
    for row, (y_name, y_label, (low, high), _) in enumerate(_ROWS):
        axes[row, 0].set_ylim(*_limits(low, high, shown[y_name]))
        axes[row, 0].set_ylabel(y_label)
        for col, x_name in enumerate(("env_steps", "wall_time_s")):
            ax = axes[row, col]
            ax.grid(True, alpha=0.3)
            against = "env steps" if x_name == "env_steps" else "wall time"
            ax.set_title(f"{_TITLES[y_name]} vs {against}")
            if row == len(_ROWS) - 1:
                ax.set_xlabel("environment steps" if x_name == "env_steps" else "wall-clock time (min)")
            if x_name == "env_steps":
                ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useMathText=True)
    handles = [line for line in axes[0, 0].get_lines()]
    if banded:
        handles.append(Patch(facecolor="0.5", alpha=0.3, label="+/- 1 std over the evaluation episodes"))
    axes[0, 0].legend(handles=handles, loc="best", fontsize="small")
    default = "Learning curves" + (f": {clips[0]}" if len(clips) == 1 else "")
    fig.suptitle(title or default)
    return fig


def plot_learning_curves(
    run_dirs: Sequence[str | os.PathLike] | str | os.PathLike,
    out_path: str | os.PathLike,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (11.0, 10.5),
    dpi: int = 120,
    wall_offsets_s: Sequence[float] | None = None,
) -> Path:
    """Draw a 3x2 figure of learning curves, one line per run, and save it (atomically) to ``out_path``.

    Panels (:func:`learning_curves_figure`): normalised return, time to fall (s) and MPJPE (mm), each against
    env steps and against wall time (min), with a band of +/- one std over each evaluation's episodes where the
    CSV has it.  The image is ``figsize * dpi`` pixels (default 1320 x 1260).

    :param run_dirs: run directories (or their ``evaluations.csv`` files)
    :param out_path: image file; ``.png`` normally, any format matplotlib writes (``.pdf``, ``.svg``) works
    :param labels: legend entries, one per run; default the run folder names
    :param title: figure title; default "Learning curves", with the clip's name when every run names the same
    :param wall_offsets_s: seconds added to each run's wall times (e.g. the SFT time before a fine-tuning run)
    :raises FileNotFoundError: a run without ``evaluations.csv``
    :raises ValueError: bad labels, an unsupported output format, or a malformed CSV
    :warns MixedClipsWarning: the runs' ``run.json`` files name different clips
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out_path = Path(out_path).expanduser()
    fmt = out_path.suffix.lower().lstrip(".")
    supported = FigureCanvasAgg.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(f"cannot write a figure to {str(out_path)!r}: use one of .{', .'.join(sorted(supported))}")
    fig = learning_curves_figure(run_dirs, labels=labels, title=title, figsize=figsize, dpi=dpi,
                                 wall_offsets_s=wall_offsets_s)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out_path)
    try:
        fig.savefig(tmp, format=fmt, dpi=dpi)
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_path
