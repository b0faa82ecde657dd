#!/usr/bin/env bash
# Install everything simsearch needs on a fresh Debian machine, idempotently:
# system packages (redis-server, Fashion-MNIST, WordNet, GCIDE), a venv in .venv, torch 2.13.0 first
# (the CPU wheel; a plain `torch` requirement would pull GBs of CUDA), then the project with every extra,
# at the exact versions we test with (constraints.txt; pyproject.toml declares ranges).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need_apt+=(dataset-fashion-mnist)
[ -f /usr/share/wordnet/data.noun ] || need_apt+=(wordnet-base)
[ -f /usr/share/dictd/gcide.index ] || need_apt+=(dict-gcide)
command -v mkfs.ext4 >/dev/null 2>&1 || need_apt+=(e2fsprogs)  # tests/test_disk_faults.py: a loop ext4 image
command -v losetup >/dev/null 2>&1 || need_apt+=(mount)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf ] || need_apt+=(fonts-dejavu-core)  # datasets/glyphs.py
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-ExtraLight.ttf ] || need_apt+=(fonts-dejavu-extra)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)  # tests/test_dashboard.py: a real headless browser
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
# promtool (tests/test_metrics.py checks deploy/prometheus/); without recommends: no node exporter, no ipmitool
if ! command -v promtool >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  [ ${#need_apt[@]} -gt 0 ] || $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
stamp=.venv/.simsearch-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q torch==2.13.0 -c constraints.txt
  python -m pip install -q -e ".[all]" -c constraints.txt
  echo "$want" > "$stamp"
fi
