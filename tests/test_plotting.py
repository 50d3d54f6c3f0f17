"""Learning-curve plots: files that decode, from evaluation CSVs, the spread as a band, axes on the quantities'
natural ranges, a warning for runs of different clips, and clear errors."""

from __future__ import annotations

import csv
import json
import re
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from matplotlib.collections import PolyCollection

import sb3_mimic  # noqa: F401  (registers the envs)
from sb3_mimic.cli import main
from sb3_mimic.plotting import (
    MixedClipsWarning,
    learning_curves_figure,
    load_evaluations,
    plot_learning_curves,
    run_clip,
)
from sb3_mimic.rl import EVAL_COLUMNS

#: the columns of evaluations.csv before the std columns were added
OLD_COLUMNS = ["iteration", "env_steps", "wall_time_s", "mean_reward", "normalized_return", "mean_survival_s",
               "fall_rate", "mpjpe_mm"]
COLUMNS = list(EVAL_COLUMNS)


def write_run(folder: Path, n: int, speed: float, columns=COLUMNS, env_id: str | None = None,
              env_kwargs: dict | None = None, survival_scale: float = 20.0) -> Path:
    """A run folder with ``n`` evaluations that improve at ``speed`` (and a ``run.json`` if ``env_id``)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(int(speed * 10))
    with (folder / "evaluations.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for i in range(n):
            progress = 1 - np.exp(-speed * i / n)
            row = {
                "iteration": i, "env_steps": 5000 * (i + 1), "wall_time_s": 40.0 * (i + 1) / speed,
                "mean_reward": 500 * progress, "normalized_return": 0.9 * progress + 0.02 * rng.random(),
                "mean_survival_s": survival_scale * progress, "fall_rate": 1 - progress,
                "mpjpe_mm": 200 * (1 - progress), "std_normalized_return": 0.05 + 0.1 * rng.random(),
                "std_survival_s": 3.0 * rng.random(), "std_mpjpe_mm": 30.0 * rng.random(),
            }
            writer.writerow([row[c] for c in columns])
    if env_id is not None:
        (folder / "run.json").write_text(json.dumps({"algo": "trpo", "env_id": env_id, "env_kwargs": env_kwargs or {}}))
    return folder


def _bands(ax) -> list[PolyCollection]:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def test_learning_curves_png(tmp_path: Path):
    runs = [write_run(tmp_path / "trpo_walk", 20, 3.0), write_run(tmp_path / "ppo_walk", 15, 1.5)]
    data = load_evaluations(runs[0])
    assert len(data["env_steps"]) == 20 and data["wall_time_s"].dtype == np.float64
    out = plot_learning_curves(runs, tmp_path / "plots" / "curves.png", figsize=(8, 6), dpi=100)
    assert out == tmp_path / "plots" / "curves.png" and out.stat().st_size > 10_000
    image = iio.imread(out)
    assert image.shape[:2] == (600, 800) and image.shape[2] in (3, 4)
    assert image[..., :3].std() > 5
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]
    labelled = plot_learning_curves(runs, tmp_path / "labelled.png", labels=["A", "B"], title="walk")
    assert iio.imread(labelled).shape[:2] == (1260, 1320)  # three rows of panels


def test_band_is_the_spread_over_the_evaluation_episodes(tmp_path: Path):
    run = write_run(tmp_path / "new", 12, 2.0)
    data = load_evaluations(run)
    fig = learning_curves_figure([run])
    axes = np.array(fig.axes).reshape(3, 2)
    rows = [("normalized_return", "std_normalized_return", 1.0), ("mean_survival_s", "std_survival_s", 20.0),
            ("mpjpe_mm", "std_mpjpe_mm", np.inf)]
    for (y_name, std_name, top), panels in zip(rows, axes, strict=True):
        for col, ax in enumerate(panels):
            (band,) = _bands(ax)
            x = data["env_steps"] if col == 0 else data["wall_time_s"] / 60
            vertices = band.get_paths()[0].vertices
            lo = np.clip(data[y_name] - data[std_name], 0, top)
            hi = np.clip(data[y_name] + data[std_name], 0, top)
            for xi, a, b in zip(x, lo, hi, strict=True):  # the band spans mean -/+ std at every evaluation
                at = vertices[np.isclose(vertices[:, 0], xi)][:, 1]
                assert np.isclose(at.min(), a) and np.isclose(at.max(), b), (y_name, col, xi)
            assert np.allclose(ax.get_lines()[0].get_ydata(), data[y_name])  # around the mean line
    assert "std" in " ".join(t.get_text() for t in axes[0, 0].get_legend().get_texts())


def test_old_csv_without_std_columns_plots_without_a_band(tmp_path: Path):
    old = write_run(tmp_path / "old", 6, 1.0, columns=OLD_COLUMNS)
    fig = learning_curves_figure([old])
    assert all(not _bands(ax) for ax in fig.axes)
    assert all(len(ax.get_lines()) == 1 for ax in fig.axes)  # MPJPE too
    assert iio.imread(plot_learning_curves([old], tmp_path / "old.png")).shape[:2] == (1260, 1320)
    mixed = write_run(tmp_path / "new", 6, 1.0)
    fig = learning_curves_figure([old, mixed])
    assert all(len(_bands(ax)) == 1 and len(ax.get_lines()) == 2 for ax in fig.axes)


def test_axes_keep_their_natural_ranges(tmp_path: Path):
    flat = write_run(tmp_path / "flat", 10, 0.05, survival_scale=1.0)  # small, noisy figures near the start
    axes = np.array(learning_curves_figure([flat]).axes).reshape(3, 2)
    lo, hi = axes[0, 0].get_ylim()
    assert lo <= 0 < 1 <= hi and hi - lo < 1.1  # normalised return: 0 to 1
    lo, hi = axes[1, 0].get_ylim()
    assert lo <= 0 and 20 <= hi < 21  # time to fall: 0 to the 20 s episode limit, though all values are below 1 s
    lo, hi = axes[2, 0].get_ylim()
    assert lo <= 0 < hi  # MPJPE from 0
    long = write_run(tmp_path / "long", 10, 3.0, survival_scale=30.0)  # another limit: the data widen the axis
    lo, hi = np.array(learning_curves_figure([long]).axes).reshape(3, 2)[1, 0].get_ylim()
    assert hi >= load_evaluations(long)["mean_survival_s"].max()


def test_runs_of_different_clips_warn(tmp_path: Path, capsys):
    walk = write_run(tmp_path / "walk", 4, 1.0, env_id="MimicHumanoidWalk-v0")
    walk_by_path = write_run(tmp_path / "walk_generic", 4, 2.0, env_id="MimicHumanoid-v0",
                             env_kwargs={"motion": "humanoid3d_walk"})
    run = write_run(tmp_path / "run", 4, 1.5, env_id="MimicHumanoidRun-v0")
    bare = write_run(tmp_path / "bare", 4, 1.0)  # no run.json: no clip to compare
    assert [run_clip(r) for r in (walk, walk_by_path, run, bare)] == ["walk", "walk", "run", None]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = learning_curves_figure([walk, walk_by_path, bare])
    assert fig.get_suptitle() == "Learning curves: walk"
    with pytest.warns(MixedClipsWarning, match=r"walk \(walk\), run \(run\)"):
        plot_learning_curves([walk, run], tmp_path / "mixed.png")
    assert (tmp_path / "mixed.png").is_file()
    capsys.readouterr()
    assert main(["plot", str(walk), str(run), "--out", str(tmp_path / "cli.png")]) == 0
    captured = capsys.readouterr()
    assert "warning" in captured.err and "different clips" in captured.err and "run (run)" in captured.err
    assert "Wrote" in captured.out and (tmp_path / "cli.png").is_file()
    assert main(["plot", str(walk), str(walk_by_path), "--out", str(tmp_path / "same.png")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_learning_curves_errors(tmp_path: Path):
    empty = tmp_path / "no_run"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(str(empty / "evaluations.csv"))):
        load_evaluations(empty)
    good = write_run(tmp_path / "good", 3, 1.0)
    with pytest.raises(FileNotFoundError, match=r"evaluations\.csv"):
        plot_learning_curves([good, empty], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    partial = write_run(tmp_path / "partial", 3, 1.0, columns=["env_steps", "wall_time_s", "normalized_return"])
    with pytest.raises(ValueError, match="mean_survival_s"):
        load_evaluations(partial)
    with pytest.raises(ValueError, match="labels"):
        plot_learning_curves([good], tmp_path / "x.png", labels=["a", "b"])
    with pytest.raises(ValueError, match="cannot write"):
        plot_learning_curves([good], tmp_path / "x.notaformat")
