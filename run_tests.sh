#!/usr/bin/env bash
# Run the test suite: ./run_tests.sh [pytest args...]   (slow tests: ./run_tests.sh -m slow)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/setup_env.sh
MUJOCO_GL="${MUJOCO_GL:-egl}" exec .venv/bin/python -m pytest "$@"
