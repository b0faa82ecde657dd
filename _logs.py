"""One logging setup for the `simsearch` command: a level and a format (text or JSON lines)
for our loggers, and third-party logging (Ray's, ScaNN's C++ absl lines) kept off the
terminal unless the level is info or debug.

The level travels to child processes (Ray workers, a benchmark's server subprocess) in
$SIMSEARCH_LOG_LEVEL, which is also the default when nothing configured it: quiet.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
LEVEL_ENV = "SIMSEARCH_LOG_LEVEL"
FORMAT_ENV = "SIMSEARCH_LOG_FORMAT"
DEFAULT_LEVEL = "warning"
# Libraries that install their own stderr handler at import (Ray does, on "ray").
THIRD_PARTY = ("ray",)
# absl::LogSeverityAtLeast: kInfo 0, kWarning 1, kError 2.
_ABSL = {"debug": 0, "info": 0, "warning": 2, "error": 2}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        doc = {"time": f"{stamp}.{int(record.msecs):03d}Z", "level": record.levelname.lower(),
               "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def level_name() -> str:
    """The configured level: $SIMSEARCH_LOG_LEVEL if it names one of LEVELS, else warning."""
    name = os.environ.get(LEVEL_ENV, "").lower()
    return name if name in LEVELS else DEFAULT_LEVEL


def third_party_level() -> int:
    """What a library may log: as much as ours at info/debug, else only errors."""
    level = getattr(logging, level_name().upper())
    return level if level <= logging.INFO else logging.ERROR


def absl_min_level() -> int:
    """absl's minimum severity for C++ libraries (ScaNN): their INFO lines only at info/debug."""
    return _ABSL[level_name()]


def configure(level: str = DEFAULT_LEVEL, fmt: str = "text") -> None:
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    os.environ[LEVEL_ENV] = level  # inherited by Ray workers and subprocesses started from here
    os.environ[FORMAT_ENV] = fmt
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    for name in THIRD_PARTY:
        if name in sys.modules:
            adopt(name)
    scann_index = sys.modules.get("simsearch.shard.scann_index")
    if scann_index is not None:  # already imported: it applied the old level
        scann_index.quiet_absl()


def adopt(name: str) -> None:
    """Route a library's logger through ours: drop the handler it installed, propagate to the
    root (our format), at third_party_level(). Call again after the library is (re)imported."""
    logger = logging.getLogger(name)
    for h in list(logger.handlers):
        logger.removeHandler(h)
    logger.propagate = True
    logger.setLevel(third_party_level())
