"""Learning-curve plots: files that decode, from evaluation CSVs, and clear errors."""

from __future__ import annotations

import csv
import re
from pathlib import Path
import imageio.v3 as iio
import numpy as np
import pytest

import sb3_mimic  # noqa: F401  (registers the envs)
from sb3_mimic.plotting import load_evaluations, plot_learning_curves


COLUMNS = ["iteration", "env_steps", "wall_time_s", "mean_reward", "normalized_return", "mean_survival_s",
           "fall_rate", "mpjpe_mm"]


def write_run(folder: Path, n: int, speed: float, columns=COLUMNS) -> Path:
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
                "mean_survival_s": 20 * progress, "fall_rate": 1 - progress, "mpjpe_mm": 200 * (1 - progress),
            }
            writer.writerow([row[c] for c in columns])
    return folder


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
    assert iio.imread(labelled).shape[:2] == (960, 1320)


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
