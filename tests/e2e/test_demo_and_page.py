"""`demo` runs end to end, and the trace page renders in a real browser."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from incremental_analytics_local.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_demo_runs_to_completion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path), "--users", "8", "--events", "300"]) == 0
    printed = capsys.readouterr().out
    assert "Ran the real workflows on the local AWS" in printed
    assert "aggregate-redbutton" in printed and "QUALIFIED at" in printed and "contributing events" in printed
    assert "The trace of that execution:" in printed
    page = Path(printed.strip().splitlines()[-1].rsplit(": ", 1)[1])
    assert page.exists() and "<svg" in page.read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package chromium)")
def test_the_trace_page_renders_in_headless_chromium(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path), "--users", "5", "--events", "120"]) == 0
    page = Path(capsys.readouterr().out.strip().splitlines()[-1].rsplit(": ", 1)[1])
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [str(CHROMIUM), *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert 'data-state="ParseRecords"' in dom and "Visited states" in dom
    screenshot = tmp_path / "trace.png"
    subprocess.run(
        [str(CHROMIUM), *flags, f"--screenshot={screenshot}", "--window-size=1400,1800", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert screenshot.stat().st_size > 20_000  # a drawn page, not a blank one
