"""Packaging checks: the declared dependencies, and a built wheel that carries its data and works outside the repo."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _dependency_names(deps: list[str]) -> dict[str, str]:
    """Map each requirement's normalised name to the requirement string."""
    names = {}
    for dep in deps:
        spec = dep.split(";")[0].strip()
        name = spec
        for sep in ("[", "=", "<", ">", "!", "~", " "):
            name = name.split(sep)[0]
        names[name.lower().replace("_", "-").replace(".", "-")] = spec.replace(" ", "")
    return names


def test_pyproject_dependencies():
    meta = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    all_deps = list(meta["dependencies"])
    for extra in meta.get("optional-dependencies", {}).values():
        all_deps += extra
    names = _dependency_names(all_deps)
    # imitation pins stable-baselines3~=2.2.1 / gymnasium~=0.29; declaring it would make pip downgrade the stack.
    # scripts/setup_env.sh installs it with --no-deps instead.
    assert "imitation" not in names, "imitation must not be a declared dependency (install it with --no-deps)"
    assert names.get("stable-baselines3") == "stable-baselines3==2.9.2"


@pytest.mark.slow
def test_wheel_ships_data_and_works_outside_the_repo(tmp_path):
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(REPO_ROOT)],
        check=True,
        timeout=600,
    )
    (wheel,) = wheel_dir.glob("sb3_mimic-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for member in ("sb3_mimic/_data/envs/humanoid3d.xml", "sb3_mimic/_data/motions/catalogue.json", "sb3_mimic/py.typed",
                   "sb3_mimic/pretrained/walk.zip", "sb3_mimic/pretrained/walk.json"):
        assert member in names, f"{member} missing from {wheel.name}"
    assert not any(n.startswith(("tests/", "tools/", "benchmarks/")) for n in names)

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        timeout=600,
    )

    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("PYTHONSAFEPATH", None)
    code = (
        "import sb3_mimic, sb3_mimic._resources as r; print(r.policy_file('pretrained:walk')); print(sb3_mimic.__file__); "
        "print(r.data_path('envs', 'humanoid3d.xml'))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    policy_file, module_file, data_file = (Path(line) for line in out.stdout.strip().splitlines()[-3:])
    assert policy_file.resolve().is_relative_to(target.resolve()) and policy_file.is_file()
    assert module_file.resolve().is_relative_to(target.resolve()), f"imported sb3_mimic from {module_file}"
    assert data_file.resolve().is_relative_to(target.resolve()), f"data came from {data_file}"
    assert data_file.is_file()
