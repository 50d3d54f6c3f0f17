#!/usr/bin/env bash
# Bootstrap the project's virtualenv (.venv at the repository root). Idempotent: a stamp inside .venv holds a
# hash of pyproject.toml and of this script; when it matches, nothing is done. Change either and the installs
# run again.
#
# Stages (order matters):
#   1. torch==2.13.0 first: its CPU build is what we want; an unpinned torch pulls a multi-GB CUDA build.
#   2. the project, editable, with its test extra.
#   3. imitation==1.0.1 with --no-deps: it pins stable-baselines3~=2.2.1 / gymnasium~=0.29, so installing it
#      with its dependencies would downgrade the stack. `pip check` reports its unmet pins: expected.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
STAMP="$VENV/.sb3_mimic_setup_stamp"
PYTHON="${PYTHON:-python3}"

TORCH_SPEC="torch==2.13.0"
IMITATION_SPEC="imitation==1.0.1"

hash_inputs() {
    cat "$ROOT/pyproject.toml" "$ROOT/scripts/setup_env.sh" | sha256sum | cut -d' ' -f1
}

want="$(hash_inputs)"
if [[ -x "$PY" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi

cd "$ROOT"
if [[ ! -x "$PY" ]]; then
    echo "[setup_env] creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
fi
rm -f "$STAMP"   # an interrupted run must not leave a stale stamp behind

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

echo "[setup_env] upgrading pip"
"$PY" -m pip install -q --upgrade pip

echo "[setup_env] installing $TORCH_SPEC (CPU build)"
"$PY" -m pip install -q "$TORCH_SPEC"

echo "[setup_env] installing sb3-mimic (editable) with its test extra"
"$PY" -m pip install -q -e ".[test]"

echo "[setup_env] installing $IMITATION_SPEC --no-deps"
"$PY" -m pip install -q --no-deps "$IMITATION_SPEC"

echo "[setup_env] checking imports"
"$PY" -c "import torch, stable_baselines3, imitation, sb3_mimic" \
    || { echo "[setup_env] ERROR: the environment does not import; see above" >&2; exit 1; }

echo "$want" > "$STAMP"
echo "[setup_env] done: $VENV ($("$PY" -c 'import torch; print("torch", torch.__version__)'))"
