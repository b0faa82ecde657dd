"""Refresh docs/screenshots/: a PNG of every dashboard page, as the browser test sees them.

    python scripts/dashboard_screenshots.py [--out docs/screenshots]

Runs tests/test_dashboard.py (a real `simsearch serve` assembly with its dashboard, digits images on a
trained encoder, definitions on frozen MiniLM, plain vectors with payloads; headless Chromium driven by
Selenium) with $SIMSEARCH_SCREENSHOTS pointing at --out, so the pictures are the ones the test checked.
Needs chromium and chromium-driver (scripts/setup.sh installs them).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):  # a page renamed or gone leaves no stale picture behind
        old.unlink()
    env = {**os.environ, "SIMSEARCH_SCREENSHOTS": str(out), "PYTHONSAFEPATH": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "test_dashboard.py")], cwd=ROOT, env=env)
    shots = sorted(out.glob("*.png"))
    for shot in shots:
        print(shot.relative_to(ROOT) if shot.is_relative_to(ROOT) else shot)
    return done.returncode or (0 if shots else 1)


if __name__ == "__main__":
    sys.exit(main())
