"""The repository stands on its own: its tracked files alone, in an empty folder, pass the smoke path.

Nothing beside the checkout is read (no sibling folder of it): the copy lives in a temporary folder that
holds nothing else, and its own packages are imported (not this checkout's)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Fast tests of every layer: the pure domain, the rules contract, the CLI's errors, and one `run` through the real
# workflows on the embedded local AWS (tests/e2e/test_run.py).
SMOKE = ["tests/unit", "tests/contract", "tests/e2e/test_cli_errors.py", "tests/e2e/test_run.py"]


def _tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail("this test copies the files git tracks: run it in a git checkout")
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True, timeout=60
    ).stdout
    return [name for name in listed.decode().split("\0") if name]


def test_the_tracked_files_alone_pass_the_smoke_path(tmp_path: Path) -> None:
    clone = tmp_path / "incremental-analytics"
    for name in _tracked_files():
        source, target = ROOT / name, clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(source.readlink())
        elif source.exists():  # a tracked file deleted in the working tree is not part of it
            shutil.copy2(source, target)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["incremental-analytics"]

    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    environment["PYTHONPATH"] = os.pathsep.join(str(clone / part) for part in ("functions", "local", "."))
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import incremental_analytics, incremental_analytics_local; "
            "print(incremental_analytics.__file__); print(incremental_analytics_local.__file__)",
        ],
        cwd=clone,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert all(path.startswith(str(clone)) for path in where), where

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SMOKE],
        cwd=clone,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
