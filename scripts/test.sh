#!/usr/bin/env bash
# The test command: installs what it needs, then runs the whole suite (real Ray, Redis, ScaNN, gRPC).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
exec python -m pytest "$@"
