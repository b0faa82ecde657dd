#!/usr/bin/env bash
# The test command: installs what it needs, checks the import contracts, then runs the unit tests
# (no Ray, no servers: under a minute) and the integration tests (real Ray, redis-server, ScaNN, gRPC,
# subprocesses killed with real signals). Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# The repository root is the package `simsearch`; with it on sys.path its folders would shadow
# PyPI packages of the same name (datasets, router, ...). Tests import the installed package.
export PYTHONSAFEPATH=1
lint-imports  # the layering in pyproject.toml's [tool.importlinter]: a broken contract fails before any test runs
python -m pytest -m unit -p no:cacheprovider --durations=10 "$@"
python -m pytest -m integration -p no:cacheprovider --durations=15 "$@"
