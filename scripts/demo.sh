#!/usr/bin/env bash
# The main job: installs what it needs, then runs `simsearch demo` (Fashion-MNIST end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export PYTHONSAFEPATH=1  # the repository root is the package: keep it off sys.path
exec simsearch demo "$@"
