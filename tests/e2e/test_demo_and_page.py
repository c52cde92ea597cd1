"""`demo` runs end to end at its default size, every trace page it keeps stays small, and the largest one fits a
1280 px window in a real browser with nothing clipped."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from incremental_analytics_cli.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGE_BYTES = 1_000_000
WINDOW = (1280, 900)


@dataclass(frozen=True)
class Demo:
    out: Path
    printed: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    out = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["demo", "--out", str(out)]) == 0
    return Demo(out, printed.getvalue())


@pytest.fixture(scope="module")
def largest_page(demo: Demo) -> Path:
    """The page of the demo's largest execution, written by `trace`."""
    records = [path for path in (demo.out / "traces").glob("*.json") if path.name != "index.json"]
    largest = max(records, key=lambda path: path.stat().st_size)
    page = demo.out / "largest.html"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["trace", "--from", str(demo.out), "--execution", largest.stem, "--html", str(page)]) == 0
    return page


def test_demo_runs_to_completion(demo: Demo) -> None:
    assert "Ran the real workflows on the local AWS" in demo.printed
    assert "aggregate-redbutton" in demo.printed and "QUALIFIED at" in demo.printed
    assert "contributing events" in demo.printed and "The trace of that execution:" in demo.printed
    page = Path(demo.printed.strip().splitlines()[-1].rsplit(": ", 1)[1])
    assert page.exists() and "<svg" in page.read_text()


def test_the_page_of_every_execution_kept_is_under_1_mb(demo: Demo, largest_page: Path) -> None:
    records = [path for path in (demo.out / "traces").glob("*.json") if path.name != "index.json"]
    largest = max(path.stat().st_size for path in records)
    assert largest > 1_000_000  # the record holds every state's whole input and output
    assert largest_page.stat().st_size < PAGE_BYTES
    for page in (demo.out / "traces").glob("*.html"):
        assert page.stat().st_size < PAGE_BYTES, page


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package chromium)")


def _chromium(profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ]
    return subprocess.run([str(CHROMIUM), *flags, *arguments], capture_output=True, text=True, timeout=120, check=True)


# Test-only: the page itself has no script. Written into a copy, this one measures the laid-out page and writes
# the figures into the DOM that --dump-dom prints.
MEASURE = """<script>
const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
const svg = document.querySelector("svg.graph");
const figures = {
  window: [document.documentElement.clientWidth, window.innerWidth],
  page_scroll_width: document.documentElement.scrollWidth,
  graph: box(svg),
  graph_natural: [svg.width.baseVal.value, svg.height.baseVal.value],
  frame: box(document.querySelector(".graph-box")),
  frame_scroll_width: document.querySelector(".graph-box").scrollWidth,
  states: [...svg.querySelectorAll("g.state")].map(g =>
    [g.dataset.state, box(g.querySelector("rect")), [...g.querySelectorAll("text")].map(box)]),
  edges: [...svg.querySelectorAll("g.edge")].map(g => [g.dataset.source, g.dataset.target,
    box(g.querySelector("path")), g.querySelector("rect.label") ? box(g.querySelector("rect.label")) : null,
    g.querySelector("text.label") ? box(g.querySelector("text.label")) : null]),
};
const out = document.createElement("pre"); out.id = "figures"; out.textContent = JSON.stringify(figures);
document.body.appendChild(out);
</script>"""


def measured(page: Path, tmp_path: Path, *, actual_size: bool = False) -> dict[str, Any]:
    copy = tmp_path / "measured.html"
    html = page.read_text()
    if actual_size:
        html = html.replace('<input type="checkbox" id="zoom">', '<input type="checkbox" id="zoom" checked>')
    copy.write_text(html.replace("</body>", MEASURE + "</body>"))
    dom = _chromium(tmp_path / "profile", "--dump-dom", copy.as_uri()).stdout
    figures: dict[str, Any] = json.loads(dom.split('<pre id="figures">', 1)[1].split("</pre>", 1)[0])
    return figures


def within(inner: list[float], outer: list[float], slack: float = 0.5) -> bool:
    return (
        inner[0] >= outer[0] - slack
        and inner[1] >= outer[1] - slack
        and inner[2] <= outer[2] + slack
        and inner[3] <= outer[3] + slack
    )


@needs_chromium
def test_the_graph_fits_a_1280_px_window_and_nothing_is_clipped(largest_page: Path, tmp_path: Path) -> None:
    figures = measured(largest_page, tmp_path)
    width = figures["window"][0]
    graph = figures["graph"]
    assert figures["page_scroll_width"] <= width  # no horizontal scrolling
    assert graph[0] >= 0 and graph[2] <= width and within(graph, figures["frame"])
    assert figures["frame_scroll_width"] <= figures["frame"][2] - figures["frame"][0]
    assert len(figures["states"]) > 20 and len(figures["edges"]) > 20
    for name, rect, texts in figures["states"]:
        assert within(rect, graph), name
        for text in texts:
            assert within(text, rect), (name, text, rect)  # the name and caption inside the box
    for source, target, path, label_rect, label in figures["edges"]:
        assert within(path, graph, slack=1.5), (source, target)  # the arrowheads included
        if label_rect:
            assert within(label_rect, graph) and within(label, label_rect, slack=1.0), (source, target, label)


@needs_chromium
def test_at_actual_size_the_graph_pans_inside_its_frame(largest_page: Path, tmp_path: Path) -> None:
    figures = measured(largest_page, tmp_path, actual_size=True)
    natural_width = figures["graph_natural"][0]
    assert figures["graph"][2] - figures["graph"][0] == pytest.approx(natural_width, abs=1)
    assert figures["page_scroll_width"] <= figures["window"][0]  # the frame scrolls, not the page
    if natural_width > figures["window"][0]:
        assert figures["frame_scroll_width"] > figures["frame"][2] - figures["frame"][0]


@needs_chromium
def test_a_screenshot_at_1280_px_draws_the_page(largest_page: Path, tmp_path: Path) -> None:
    dom = _chromium(tmp_path / "profile", "--dump-dom", largest_page.as_uri()).stdout
    assert 'data-state="MatchAndEvaluate"' in dom and "Visited states" in dom
    screenshot = tmp_path / "trace.png"
    _chromium(tmp_path / "profile", f"--screenshot={screenshot}", largest_page.as_uri())
    png = screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == WINDOW
    assert len(png) > 50_000  # a drawn page, not a blank one
