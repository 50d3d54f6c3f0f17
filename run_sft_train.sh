#!/usr/bin/env bash
# Supervised pre-training (BC/DAgger) of a policy: ./run_sft_train.sh [sb3-mimic sft args...]
# Runs from the caller's working directory, so relative paths in the arguments keep their meaning.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$ROOT/scripts/setup_env.sh"
exec "$ROOT/.venv/bin/sb3-mimic" sft "$@"
