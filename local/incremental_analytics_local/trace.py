"""`incremental-analytics trace`: the local counterpart of the Step Functions console's execution view.

The state machine's graph (inline SVG, nested Parallel branches and Map processors drawn inside their state)
with the path the execution took, then every visited state with its input, output, error and retries. One
self-contained HTML file: no script, no network. The terminal gets the path as text.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from incremental_analytics_local.invocation import command_name

NODE_W, NODE_H, GAP_X, GAP_Y, PAD, HEADER = 190, 34, 24, 30, 12, 26
_FAILURE_TYPES = ("Failed", "TimedOut", "Aborted")


@dataclass
class Step:
    """One visit of a state: what it received, what it gave, how it failed, how often it was retried."""

    name: str
    kind: str
    input: Any = None
    output: Any = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    exited: bool = False

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


def steps_of(history: Sequence[Mapping[str, Any]]) -> list[Step]:
    """The visited states in the order entered; each history event is attributed through previousEventId."""
    steps: list[Step] = []
    owner: dict[int, Step] = {}
    for event in history:
        kind = str(event["type"])
        event_id = int(event["id"])
        if kind.endswith("StateEntered"):
            details = event.get("stateEnteredEventDetails", {})
            step = Step(details.get("name", "?"), kind.removesuffix("StateEntered"), _parse(details.get("input")))
            steps.append(step)
            owner[event_id] = step
            continue
        step_or_none = owner.get(int(event.get("previousEventId") or 0))
        if step_or_none is None:
            continue
        step = step_or_none
        owner[event_id] = step
        if kind.endswith("Scheduled"):
            step.attempts += 1
        elif kind.endswith(_FAILURE_TYPES) and not kind.startswith("Execution"):
            failure: Mapping[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            step.errors.append({"type": kind, "error": failure.get("error"), "cause": failure.get("cause")})
        elif kind.endswith("StateExited"):
            step.output = _parse(event.get("stateExitedEventDetails", {}).get("output"))
            step.exited = True
    return steps


def _parse(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def execution_failure(history: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    for event in history:
        if str(event["type"]).startswith("Execution") and str(event["type"]).endswith(_FAILURE_TYPES):
            return next((v for k, v in event.items() if k.endswith("EventDetails")), {"error": event["type"]})
    return None


# -- the graph -------------------------------------------------------------------------------------------------


@dataclass
class Box:
    name: str
    kind: str
    x: float = 0
    y: float = 0
    w: float = NODE_W
    h: float = NODE_H
    children: list[Scope] = field(default_factory=list)


@dataclass
class Scope:
    boxes: dict[str, Box]
    edges: list[tuple[str, str, str]]  # source, target, label
    w: float = 0
    h: float = 0


def layout(machine: Mapping[str, Any]) -> Scope:
    """States in rows by their distance from StartAt; a Parallel or Map holds its inner scopes side by side."""
    states: Mapping[str, Any] = machine.get("States", {})
    boxes: dict[str, Box] = {}
    for name, state in states.items():
        box = Box(name, state.get("Type", "?"))
        inner = [*(state.get("Branches") or [])]
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            inner.append(processor)
        if inner:
            box.children = [layout(scope) for scope in inner]
            box.w = max(NODE_W, sum(child.w for child in box.children) + GAP_X * (len(box.children) - 1) + 2 * PAD)
            box.h = HEADER + max(child.h for child in box.children) + PAD
        boxes[name] = box
    edges = [(name, target, label) for name, state in states.items() for target, label in _edges(state)]
    depth = _depths(machine.get("StartAt"), states)
    rows: dict[int, list[Box]] = {}
    for name, box in boxes.items():
        rows.setdefault(depth.get(name, max(depth.values(), default=0) + 1), []).append(box)
    y = 0.0
    width = 0.0
    for _, row in sorted(rows.items()):
        x = 0.0
        for box in row:
            box.x, box.y = x, y
            x += box.w + GAP_X
        width = max(width, x - GAP_X)
        y += max(box.h for box in row) + GAP_Y
    for row in rows.values():  # centre each row
        row_width = sum(box.w for box in row) + GAP_X * (len(row) - 1)
        for box in row:
            box.x += (width - row_width) / 2
    for box in boxes.values():
        x = box.x + PAD
        for child in box.children:
            _shift(child, x, box.y + HEADER)
            x += child.w + GAP_X
    return Scope(boxes, edges, max(width, NODE_W), max(y - GAP_Y, NODE_H))


def _shift(scope: Scope, dx: float, dy: float) -> None:
    for box in scope.boxes.values():
        box.x += dx
        box.y += dy
        for child in box.children:
            _shift(child, dx, dy)


def _edges(state: Mapping[str, Any]) -> list[tuple[str, str]]:
    found = []
    if "Next" in state:
        found.append((state["Next"], ""))
    for choice in state.get("Choices", []):
        found.append((choice["Next"], "choice"))
    if "Default" in state:
        found.append((state["Default"], "default"))
    for catch in state.get("Catch", []):
        found.append((catch["Next"], "catch"))
    return found


def _depths(start: Any, states: Mapping[str, Any]) -> dict[str, int]:
    depth = {start: 0} if start in states else {}
    frontier = list(depth)
    while frontier:
        name = frontier.pop(0)
        for target, _ in _edges(states[name]):
            if target in states and target not in depth:
                depth[target] = depth[name] + 1
                frontier.append(target)
    return depth


# -- rendering -------------------------------------------------------------------------------------------------

_COLOURS = {
    "ok": ("#e6f4ea", "#1e8e3e"),
    "failed": ("#fce8e6", "#d93025"),
    "caught": ("#fef7e0", "#e37400"),
    "unvisited": ("#f8f9fa", "#9aa0a6"),
}


def _status(visits: Counter[str], failures: Counter[str], unfinished: set[str], name: str) -> str:
    if not visits[name]:
        return "unvisited"
    if name in unfinished:
        return "failed"
    return "caught" if failures[name] else "ok"


def render_svg(scope: Scope, visits: Counter[str], failures: Counter[str], unfinished: set[str]) -> str:
    parts: list[str] = []
    _draw(scope, visits, failures, unfinished, parts)
    width, height = scope.w + 2, scope.h + 2
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="-1 -1 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="12">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#5f6368"/></marker></defs>' + "".join(parts) + "</svg>"
    )


def _draw(scope: Scope, visits: Counter[str], failures: Counter[str], unfinished: set[str], parts: list[str]) -> None:
    for source, target, label in scope.edges:
        if source not in scope.boxes or target not in scope.boxes:
            continue
        a, b = scope.boxes[source], scope.boxes[target]
        x1, y1 = a.x + a.w / 2, a.y + a.h
        x2, y2 = b.x + b.w / 2, b.y
        dash = ' stroke-dasharray="4 3"' if label in ("catch", "default") else ""
        if y2 <= y1:  # a loop back up: around the right-hand side
            right = max(a.x + a.w, b.x + b.w) + 12
            path = f"M{a.x + a.w},{a.y + a.h / 2} H{right} V{b.y + b.h / 2} H{b.x + b.w}"
        else:
            path = f"M{x1},{y1} C{x1},{y1 + 14} {x2},{y2 - 14} {x2},{y2}"
        parts.append(f'<path d="{path}" fill="none" stroke="#5f6368"{dash} marker-end="url(#arrow)"/>')
    for box in scope.boxes.values():
        fill, stroke = _COLOURS[_status(visits, failures, unfinished, box.name)]
        title = html.escape(f"{box.name} ({box.kind}): entered {visits[box.name]}x, failed {failures[box.name]}x")
        parts.append(
            f'<g class="state" data-state="{html.escape(box.name)}"><title>{title}</title>'
            f'<rect x="{box.x}" y="{box.y}" width="{box.w}" height="{box.h}" rx="6" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{2 if visits[box.name] else 1}"/>'
        )
        label = html.escape(box.name) + (f" \u00d7{visits[box.name]}" if visits[box.name] > 1 else "")
        text_y = box.y + (17 if box.children else box.h / 2 + 4)
        parts.append(f'<text x="{box.x + box.w / 2}" y="{text_y}" text-anchor="middle">{label}</text></g>')
        for child in box.children:
            _draw(child, visits, failures, unfinished, parts)


def render_html(record: Mapping[str, Any]) -> str:
    history = record["history"]
    steps = steps_of(history)
    visits = Counter(step.name for step in steps)
    failures = Counter(step.name for step in steps if step.errors)
    unfinished = {step.name for step in steps if step.errors and not step.exited}
    svg = render_svg(layout(record["definition"]), visits, failures, unfinished)
    failure = execution_failure(history)
    rows = []
    for number, step in enumerate(steps, start=1):
        status = "failed" if step.errors and not step.exited else ("caught" if step.errors else "ok")
        errors = "".join(
            f"<div class='error'>{html.escape(str(e['error']))}: {html.escape(str(e['cause'] or ''))[:2000]}</div>"
            for e in step.errors
        )
        rows.append(
            f"<details class='{status}'><summary>{number}. <b>{html.escape(step.name)}</b> "
            f"<span class='kind'>{html.escape(step.kind)}</span>"
            f"{f' · retried {step.retries}x' if step.retries else ''}{' · error' if step.errors else ''}</summary>"
            f"{errors}<div class='io'><div><h4>Input</h4><pre>{_pretty(step.input)}</pre></div>"
            f"<div><h4>Output</h4><pre>{_pretty(step.output)}</pre></div></div></details>"
        )
    status_line = html.escape(record.get("status", ""))
    if failure:
        status_line += f" — {html.escape(str(failure.get('error')))}: {html.escape(str(failure.get('cause', '')))}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(record["name"])} · trace</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #202124; }}
h1 {{ font-size: 20px; margin-bottom: 4px; }} .meta {{ color: #5f6368; margin-bottom: 16px; }}
.graph {{ overflow: auto; border: 1px solid #dadce0; border-radius: 8px; padding: 12px; background: #fff; }}
.legend span {{ display: inline-block; padding: 2px 8px; margin-right: 8px; border-radius: 4px; border: 1px solid; }}
details {{ border: 1px solid #dadce0; border-radius: 6px; margin: 6px 0; padding: 6px 10px; }}
details.failed {{ border-color: #d93025; }} details.caught {{ border-color: #e37400; }}
.kind {{ color: #5f6368; font-size: 12px; }} .error {{ color: #d93025; margin: 6px 0; white-space: pre-wrap; }}
.io {{ display: flex; gap: 12px; }} .io > div {{ flex: 1; min-width: 0; }}
pre {{ background: #f8f9fa; padding: 8px; overflow: auto; max-height: 320px; font-size: 12px; }}
</style></head><body>
<h1>{html.escape(record["state_machine"])} · {html.escape(record["name"])}</h1>
<div class="meta">{status_line} · {len(steps)} states entered · {html.escape(record["execution"])}</div>
<div class="legend"><span style="background:#e6f4ea;border-color:#1e8e3e">visited</span>
<span style="background:#fef7e0;border-color:#e37400">failed, then caught or retried</span>
<span style="background:#fce8e6;border-color:#d93025">failed</span>
<span style="background:#f8f9fa;border-color:#9aa0a6">not visited</span></div>
<div class="graph">{svg}</div>
<h2>Visited states</h2>
{"".join(rows)}
</body></html>
"""


def _pretty(value: Any) -> str:
    return html.escape(json.dumps(value, indent=2, sort_keys=True)[:20_000]) if value is not None else ""


def text_path(record: Mapping[str, Any]) -> str:
    steps = steps_of(record["history"])
    top = set(record["definition"].get("States", {}))
    path = [step.name for step in steps if step.name in top]
    inner = Counter(step.name for step in steps if step.name not in top)
    failed = Counter(step.name for step in steps if step.errors)
    retried = sum(step.retries for step in steps)
    lines = [
        f"{record['state_machine']} {record['name']}: {record['status']}, {len(steps)} states entered"
        + (f", {retried} retries" if retried else ""),
        "  " + " -> ".join(path),
    ]
    if inner:
        lines.append("  inside: " + ", ".join(f"{name} x{count}" for name, count in inner.items()))
    if failed:
        lines.append("  failed: " + ", ".join(f"{name} x{count}" for name, count in failed.items()))
    return "\n".join(lines)


def load_trace(folder: Path, execution: str | None) -> dict[str, Any]:
    traces = folder / "traces"
    files = sorted(traces.glob("*.json")) if traces.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no traces in {folder} (run `{command_name()} run` with --out {folder})")
    if execution:
        name = execution.rsplit(":", 1)[-1]
        matching = [path for path in files if path.stem == name]
        if not matching:
            raise FileNotFoundError(f"no trace of {name} in {traces} (kept: {', '.join(p.stem for p in files[:5])}...)")
        path = matching[0]
    else:
        path = files[0]
        index = traces / "index.json"
        if index.exists():  # the first execution that decided an outcome, when the run kept one
            deciding = json.loads(index.read_text()).get("deciding") or []
            path = next((p for p in files if p.stem in deciding), path)
    record: dict[str, Any] = json.loads(path.read_text())
    return record
