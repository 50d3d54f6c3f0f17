"""Learning curves of training runs from their ``evaluations.csv`` files.

Each run directory holds an ``evaluations.csv`` with one row per evaluation and at least the columns
``env_steps``, ``wall_time_s``, ``normalized_return`` and ``mean_survival_s`` (time to fall, s).  Figures are
drawn with matplotlib's Agg canvas directly, so no display is needed and pyplot's global state (and backend)
is left alone.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["EVALUATIONS_FILE", "REQUIRED_COLUMNS", "load_evaluations", "plot_learning_curves"]

EVALUATIONS_FILE = "evaluations.csv"
REQUIRED_COLUMNS = ("env_steps", "wall_time_s", "normalized_return", "mean_survival_s")


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


def plot_learning_curves(
    run_dirs: Sequence[str | os.PathLike] | str | os.PathLike,
    out_path: str | os.PathLike,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (11.0, 8.0),
    dpi: int = 120,
    wall_offsets_s: Sequence[float] | None = None,
) -> Path:
    """Draw a 2x2 figure of learning curves, one line per run, and save it (atomically) to ``out_path``.

    Panels: normalised return vs env steps and vs wall time (min); time to fall (s) vs env steps and vs wall
    time.  The image is ``figsize * dpi`` pixels (default 1320 x 960).

    :param run_dirs: run directories (or their ``evaluations.csv`` files)
    :param out_path: image file; ``.png`` normally, any format matplotlib writes (``.pdf``, ``.svg``) works
    :param labels: legend entries, one per run; default the run folder names
    :param title: figure title; default "Learning curves"
    :param wall_offsets_s: seconds added to each run's wall times (e.g. the SFT time before a fine-tuning run)
    :raises FileNotFoundError: a run without ``evaluations.csv``
    :raises ValueError: bad labels, an unsupported output format, or a malformed CSV
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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
    out_path = Path(out_path).expanduser()
    fmt = out_path.suffix.lower().lstrip(".")
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    supported = canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(f"cannot write a figure to {str(out_path)!r}: use one of .{', .'.join(sorted(supported))}")
    runs = [load_evaluations(r) for r in run_dirs]  # all errors before any drawing
    offsets = list(wall_offsets_s) if wall_offsets_s is not None else [0.0] * len(runs)
    if len(offsets) != len(runs):
        raise ValueError(f"got {len(offsets)} wall-time offsets for {len(runs)} runs")
    for data, offset in zip(runs, offsets, strict=True):
        data["wall_time_s"] = data["wall_time_s"] + float(offset)

    axes = fig.subplots(2, 2, sharex="col", sharey="row")
    panels = [  # (row, column, x, y)
        (row, col, x_name, y_name)
        for row, y_name in enumerate(("normalized_return", "mean_survival_s"))
        for col, x_name in enumerate(("env_steps", "wall_time_s"))
    ]
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for data, label, color in zip(runs, labels, colors, strict=True):
        order = np.argsort(data["env_steps"], kind="stable")
        for row, col, x_name, y_name in panels:
            x = data[x_name][order] / (60.0 if x_name == "wall_time_s" else 1.0)
            y = data[y_name][order]
            axes[row, col].plot(x, y, color=color, marker="o", markersize=3, linewidth=1.5, label=label)
    for row, col, x_name, y_name in panels:
        ax = axes[row, col]
        ax.grid(True, alpha=0.3)
        if row == 1:
            ax.set_xlabel("environment steps" if x_name == "env_steps" else "wall-clock time (min)")
        if col == 0:
            ax.set_ylabel("normalised return per step" if y_name == "normalized_return" else "time to fall (s)")
        if x_name == "env_steps":
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useMathText=True)
    axes[0, 0].set_ylim(-0.02, 1.05)  # normalised return is in [0, 1]
    axes[0, 0].set_title("normalised return vs env steps")
    axes[0, 1].set_title("normalised return vs wall time")
    axes[1, 0].set_title("time to fall vs env steps")
    axes[1, 1].set_title("time to fall vs wall time")
    axes[0, 0].legend(loc="best", fontsize="small")
    fig.suptitle(title or "Learning curves")

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.{os.getpid()}.tmp{out_path.suffix}")
    try:
        fig.savefig(tmp, format=fmt, dpi=dpi)
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_path
