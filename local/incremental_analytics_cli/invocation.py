"""How the user can run this command again, as text they can paste: the commands the CLI prints must work verbatim."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

NAME = "incremental-analytics"


def command_name() -> str:
    """`incremental-analytics` when that is on PATH and is this program; else the path it was started by (e.g.
    `.venv/bin/incremental-analytics` after `make demo`), relative to the current folder when inside it."""
    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if started is None or started.name != NAME:  # imported, or `python -m incremental_analytics_cli`
        on_path = shutil.which(NAME)
        if on_path:
            return NAME
        sibling = Path(sys.executable).with_name(NAME)
        return _pasteable(sibling) if sibling.exists() else f"{_pasteable(Path(sys.executable))} -m {__package__}"
    on_path = shutil.which(NAME)
    if on_path and Path(on_path).resolve() == started.resolve():
        return NAME
    return _pasteable(started)


def _pasteable(path: Path) -> str:
    relative = os.path.relpath(path.absolute())
    if relative.startswith(".."):
        return shlex.quote(str(path.absolute()))
    return shlex.quote(relative if os.sep in relative else f".{os.sep}{relative}")
