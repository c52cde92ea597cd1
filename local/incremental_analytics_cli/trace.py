"""`incremental-analytics trace`: the local counterpart of the Step Functions console's execution view.

The page draws the state machine (inline SVG scaled to the window; Parallel branches and Map processors inside
their state; edges labelled with their Choice rule, `Default` or the errors a Catch takes), colours the states the
execution visited, and lists every visited state in the order entered, with its start, duration, input, output,
error and retries, Map iterations and Parallel branches grouped under their state. One self-contained HTML file:
no script, no network, no external font. The terminal gets the path as text, with the error of each failure.

Both read the execution's history events as GetExecutionHistory returns them
(https://docs.aws.amazon.com/step-functions/latest/apireference/API_HistoryEvent.html): each event names the
event before it in its own thread (`previousEventId`), which is how a state is placed in its Map iteration or
Parallel branch.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import html
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from incremental_analytics_cli.invocation import command_name

_FAILURE_SUFFIXES = ("Failed", "TimedOut", "Aborted")  # TaskFailed, TaskStartFailed, MapIterationAborted, ...

# -- the history, as a tree of visited states -------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """One error a state (or the execution) raised: the event that carried it, its name and cause."""

    event: str
    error: str
    cause: str
    at: dt.datetime | None = None
    event_id: int = 0
    inner: Step | None = None  # a Map or Parallel fails with the error of this state inside it


@dataclass(eq=False)
class Step:
    """One visit of a state: what it received and gave, when, how it failed, how often it was retried; a Map or
    Parallel also holds its iterations or branches."""

    number: int
    name: str
    kind: str
    event_id: int
    entered: dt.datetime | None
    parent: Group | None = None
    input: Any = None
    output: Any = None
    output_event: int = 0
    resource: str = ""
    errors: list[Failure] = field(default_factory=list)
    attempts: int = 0
    exited: bool = False
    followed: bool = False  # a next state of the same scope was entered after it: its failure was caught
    last: dt.datetime | None = None
    groups: list[Group] = field(default_factory=list)

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)

    @property
    def seconds(self) -> float | None:
        return _seconds(self.entered, self.last)

    def status(self, running: bool = False) -> str:
        if self.kind == "Fail":
            return "failed"
        if self.errors:
            return "caught" if self.exited or self.followed else "failed"
        return "running" if running and not self.exited else "ok"

    def group(self, kind: str, index: int) -> Group:
        for group in self.groups:
            if group.kind == kind and group.index == index:
                return group
        group = Group(self, kind, index)
        self.groups.append(group)
        self.groups.sort(key=lambda g: g.index)
        return group


@dataclass(eq=False)
class Group:
    """One Map iteration (its item's index) or one Parallel branch (its position in `Branches`)."""

    owner: Step
    kind: str  # "iteration" | "branch"
    index: int
    steps: list[Step] = field(default_factory=list)
    failed: bool = False
    started: dt.datetime | None = None
    ended: dt.datetime | None = None

    @property
    def seconds(self) -> float | None:
        return _seconds(self.started or (self.steps[0].entered if self.steps else None), self.ended or self._last())

    def _last(self) -> dt.datetime | None:
        times = [step.last for step in self.steps if step.last]
        return max(times) if times else None


@dataclass
class Trace:
    """A whole execution: every visited state in the order entered, the top-level ones, and how it ended."""

    steps: list[Step]
    top: list[Step]
    started: dt.datetime | None
    ended: dt.datetime | None
    failure: Failure | None
    input: Any = None
    output: Any = None

    @property
    def seconds(self) -> float | None:
        return _seconds(self.started, self.ended)


class _Scopes:
    """The state names each scope of the definition holds: the machine's, each Parallel branch's, each Map's."""

    def __init__(self, machine: Mapping[str, Any]) -> None:
        self.top = set(machine.get("States", {}))
        self.states: dict[str, Mapping[str, Any]] = {}
        self._index(machine)

    def _index(self, machine: Mapping[str, Any]) -> None:
        for name, state in machine.get("States", {}).items():
            self.states.setdefault(name, state)
            for inner in _inner_machines(state):
                self._index(inner)

    def inner(self, step: Step) -> list[set[str]]:
        return [set(inner.get("States", {})) for inner in _inner_machines(self.states.get(step.name, {}))]

    def names(self, container: Group | None) -> set[str]:
        if container is None:
            return self.top
        inner = self.inner(container.owner)
        if container.kind == "branch":
            return inner[container.index] if container.index < len(inner) else set()
        return inner[0] if inner else set()


def _inner_machines(state: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    processor = state.get("ItemProcessor") or state.get("Iterator")
    return [*(state.get("Branches") or []), *([processor] if processor else [])]


def read_trace(record: Mapping[str, Any]) -> Trace:
    """The execution's history as a tree of visits. A state entered right after a Map iteration started belongs
    to that iteration; right after a Parallel started, to the branch holding it; otherwise to the scope of the
    event before it, or the nearest enclosing scope that has a state of that name."""
    scopes = _Scopes(record.get("definition", {}))
    steps: list[Step] = []
    top: list[Step] = []
    owner: dict[int, Step | Group] = {}
    started = ended = None
    failure = None
    execution_input = execution_output = None
    for event in record["history"]:
        kind = str(event["type"])
        event_id = int(event["id"])
        at = _time(event.get("timestamp"))
        details: Mapping[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
        before = owner.get(int(event.get("previousEventId") or 0))
        if kind.startswith("Execution"):
            if kind == "ExecutionStarted":
                started, execution_input = at, _parse(details.get("input"))
            elif kind.endswith(("Succeeded", *_FAILURE_SUFFIXES)):
                ended, execution_output = at, _parse(details.get("output"))
                if not kind.endswith("Succeeded"):
                    error, cause = str(details.get("error") or kind), str(details.get("cause") or "")
                    failure = Failure(kind, error, cause, at, event_id)
            continue
        if kind.endswith("StateEntered"):
            name = str(details.get("name", "?"))
            container = _container(before, name, scopes)
            step = Step(len(steps) + 1, name, kind.removesuffix("StateEntered"), event_id, at, container)
            step.input, step.last = _parse(details.get("input")), at
            if isinstance(before, Step) and before.parent is container:
                before.followed = True
            if step.kind == "Fail":
                state = scopes.states.get(name, {})
                error, cause = str(state.get("Error", "")), str(state.get("Cause", ""))
                step.errors.append(Failure(kind, error, cause, at, event_id))
            steps.append(step)
            (container.steps if container else top).append(step)
            owner[event_id] = step
            continue
        if kind.startswith("MapIteration"):
            map_step = _ascend(before, _state("Map", details.get("name")))
            if map_step is None:
                continue
            group = map_step.group("iteration", int(details.get("index", 0)))
            if kind.endswith("Started"):
                group.started = at
            else:
                group.ended, group.failed = at, not kind.endswith("Succeeded")
            owner[event_id] = group
            continue
        found = _owning_step(before, kind, details)
        if found is None:
            continue
        step = found
        owner[event_id] = step
        step.last = at or step.last
        if kind.endswith("Scheduled"):
            step.attempts += 1
            resource = ":".join(str(details[k]) for k in ("resourceType", "resource") if details.get(k))
            step.resource = resource or step.resource
        elif kind.endswith(_FAILURE_SUFFIXES):
            error, cause = str(details.get("error") or ""), str(details.get("cause") or "")
            step.errors.append(Failure(kind, error, cause, at, event_id))
        elif kind.endswith("StateExited"):
            step.output, step.output_event, step.exited = _parse(details.get("output")), event_id, True
    for step in reversed(steps):  # a failed Map or Parallel carries no error of its own: it is its inner state's
        if step.groups and step.errors and not step.errors[-1].error:
            inner = [(s, f) for s in _descendants(step) for f in s.errors if f.error]
            if inner:
                source, carried = max(inner, key=lambda found: found[1].event_id)
                failed = step.errors[-1]
                step.errors[-1] = Failure(
                    failed.event, carried.error, carried.cause, failed.at, failed.event_id, source
                )
    return Trace(steps, top, started, ended, failure, execution_input, execution_output)


def _container(before: Step | Group | None, name: str, scopes: _Scopes) -> Group | None:
    if isinstance(before, Group):
        container: Group | None = before
    elif isinstance(before, Step):
        inner = scopes.inner(before) if not before.exited else []
        branch = next((index for index, names in enumerate(inner) if name in names), None)
        if branch is not None and before.kind == "Parallel":
            return before.group("branch", branch)
        if branch is not None:  # a Map's state with no MapIterationStarted before it: a new iteration
            return before.group("iteration", len(before.groups))
        container = before.parent
    else:
        container = None
    while container is not None and name not in scopes.names(container):
        container = container.owner.parent
    return container


def _ascend(node: Step | Group | None, wanted: Callable[[Step], bool]) -> Step | None:
    while node is not None:
        if isinstance(node, Group):
            node = node.owner
            continue
        if wanted(node):
            return node
        node = node.parent
    return None


_EVENT_KINDS = {"Lambda": "Task", "Activity": "Task", "MapRun": "Map"}


def _owning_step(before: Step | Group | None, kind: str, details: Mapping[str, Any]) -> Step | None:
    """The visit an event belongs to: the nearest enclosing state of the event's kind (and name, when it has one)."""
    prefix = next((p for p in ("MapRun", "Map", "Parallel", "Task", "Lambda", "Activity") if kind.startswith(p)), "")
    return _ascend(before, _state(_EVENT_KINDS.get(prefix, prefix), details.get("name"))) or _ascend(
        before, _state("", None)
    )


def _state(kind: str, name: Any) -> Callable[[Step], bool]:
    """A test for a visit of a state of this kind and name (either one left empty: any)."""
    return lambda step: (not kind or step.kind == kind) and (name is None or step.name == name)


def _descendants(step: Step) -> Iterator[Step]:
    for group in step.groups:
        for inner in group.steps:
            yield inner
            yield from _descendants(inner)


def _parse(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _time(value: Any) -> dt.datetime | None:
    """A history event's timestamp: a datetime (boto3), its text (a JSON copy), or epoch seconds or milliseconds."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            try:
                parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value / 1000 if value > 1e11 else value, tz=dt.UTC)
    return None


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def short_cause(cause: str, limit: int = 160) -> str:
    """A cause in one line: a Lambda error's message rather than its whole envelope (type, message, stack)."""
    parsed = _parse(cause)
    if isinstance(parsed, dict) and parsed.get("errorMessage") is not None:
        cause = str(parsed["errorMessage"])
    return _shorten(" ".join(cause.split()), limit)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# -- the graph: layered layout ----------------------------------------------------------------------------------

FONT = 12  # state names
SMALL = 10  # a state's kind and visits, edge labels
NODE_H, MIN_W, PAD_X = 38, 96, 12
GAP_X, POINT_GAP, GAP_Y = 20, 8, 10  # between boxes; around edge routes; between rows
HEADER, FRAME_PAD, CAPTION = 36, 8, 14  # a Map or Parallel: its title; space around and above each inner scope
LABEL_LINE, LABEL_CHARS = 12, 24
LOOP = 18  # room right of a state for an edge that returns to it
MARGIN = 8

# DejaVu Sans advance widths (em), the widest of the fonts a browser picks for `sans-serif` on Linux: a box sized
# by them holds its name in any of them.
_EM = dict(
    zip(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;-_'\"()[]{}$=<>*/#|!?&+\u00d7\u00b7\u2026",
        [
            *(0.613, 0.635, 0.55, 0.635, 0.615, 0.352, 0.635, 0.634, 0.278, 0.278, 0.579, 0.278, 0.974),
            *(0.634, 0.612, 0.635, 0.635, 0.411, 0.521, 0.392, 0.634, 0.592, 0.818, 0.592, 0.592, 0.525),
            *(0.684, 0.686, 0.698, 0.77, 0.632, 0.575, 0.775, 0.752, 0.295, 0.295, 0.656, 0.557, 0.863),
            *(0.748, 0.787, 0.603, 0.787, 0.695, 0.635, 0.611, 0.732, 0.684, 0.989, 0.685, 0.611, 0.685),
            *([0.636] * 10),
            *(0.318, 0.318, 0.318, 0.337, 0.337, 0.361, 0.5, 0.275, 0.46, 0.39, 0.39, 0.39, 0.39, 0.636, 0.636),
            *(0.636, 0.838, 0.838, 0.838, 0.5, 0.337, 0.838, 0.337, 0.401, 0.531, 0.78, 0.838, 0.838, 0.318, 1.0),
        ],
        strict=True,
    )
)


def text_width(text: str, size: float) -> float:
    return sum(_EM.get(char, 0.72) for char in text) * size


@dataclass(eq=False)
class Box:
    """A state drawn as a box; a Map or Parallel holds its inner scopes (`children`) below its title."""

    name: str
    kind: str
    caption: str
    x: float = 0
    y: float = 0
    w: float = MIN_W
    h: float = NODE_H
    children: list[Scope] = field(default_factory=list)
    reserve: float = 0  # room on the right for an edge back into itself


@dataclass(eq=False)
class Edge:
    """A transition of the definition and the route drawn for it (points from source to target)."""

    source: str
    target: str
    kind: str  # "next" | "choice" | "default" | "catch"
    label: str = ""
    title: str = ""
    points: list[tuple[float, float]] = field(default_factory=list)
    curved: bool = True  # points joined by vertical curves (False: a loop drawn as straight segments)
    label_at: tuple[float, float] | None = None
    label_lines: list[str] = field(default_factory=list)


@dataclass(eq=False)
class Scope:
    """One States object laid out: its boxes and edges, its size; `frame` is where its frame is drawn."""

    boxes: dict[str, Box]
    edges: list[Edge]
    w: float = 0
    h: float = 0
    title: str = ""
    frame: tuple[float, float, float, float] = (0, 0, 0, 0)


@dataclass(eq=False)
class _Node:
    """A box, or a point an edge passes through in a row it crosses (with the edge's label, in the first one)."""

    box: Box | None
    layer: int
    w: float = 0
    h: float = 0
    x: float = 0  # centre
    lines: list[str] = field(default_factory=list)
    up: list[_Node] = field(default_factory=list)
    down: list[_Node] = field(default_factory=list)


def layout(machine: Mapping[str, Any], captions: Mapping[str, str] | None = None) -> Scope:
    """The states in rows (longest path from StartAt; a loop's edge goes back up), ordered to limit crossings.
    Each edge runs through a point in every row it crosses, so that it never crosses a box; its label sits in
    the row below its source. A Map or Parallel holds its inner scopes side by side."""
    captions = captions or {}
    states: Mapping[str, Any] = machine.get("States", {})
    boxes: dict[str, Box] = {}
    for name, state in states.items():
        kind = str(state.get("Type", "?"))
        caption = captions.get(name, kind)
        box = Box(name, kind, caption)
        titles = [f"branch {n}" for n in range(len(state.get("Branches") or []))] or ["each item"]
        box.children = [layout(inner, captions) for inner in _inner_machines(state)]
        for child, title in zip(box.children, titles, strict=False):
            child.title = title
        text = max(text_width(name, FONT), text_width(caption, SMALL)) + 2 * PAD_X
        if box.children:
            frames = sum(child.w + 2 * FRAME_PAD for child in box.children) + GAP_X * (len(box.children) - 1)
            box.w = max(text, frames + 2 * FRAME_PAD)
            box.h = HEADER + max(child.h + CAPTION + FRAME_PAD for child in box.children) + FRAME_PAD
        else:
            box.w = max(MIN_W, text)
        boxes[name] = box
    edges = [edge for name, state in states.items() for edge in _edges(name, state) if edge.target in states]
    scope = Scope(boxes, edges)
    if boxes:
        _place(scope, str(machine.get("StartAt", "")))
    for box in boxes.values():
        _place_children(box)
    return scope


def _edges(name: str, state: Mapping[str, Any]) -> list[Edge]:
    found = []
    if "Next" in state:
        found.append(Edge(name, state["Next"], "next"))
    for choice in state.get("Choices", []):
        rule = choice_text(choice, compact=True)
        found.append(Edge(name, choice["Next"], "choice", rule, f"Choice rule: {choice_text(choice)}"))
    if "Default" in state:
        found.append(Edge(name, state["Default"], "default", "Default", "Default: no Choice rule matched"))
    for catch in state.get("Catch", []):
        errors = catch.get("ErrorEquals", [])
        label = "catch " + ", ".join(str(error).removesuffix("Exception") for error in errors)
        found.append(Edge(name, catch["Next"], "catch", label, f"Catch: {', '.join(errors)}"))
    return found


_COMPARATORS = {
    "Equals": "==",
    "GreaterThan": ">",
    "GreaterThanEquals": ">=",
    "LessThan": "<",
    "LessThanEquals": "<=",
    "Matches": "matches",
}
_COMPARISON = re.compile(
    r"(String|Numeric|Boolean|Timestamp)(Equals|GreaterThan|GreaterThanEquals|LessThan|"
    r"LessThanEquals|Matches)(Path)?"
)


def choice_text(rule: Mapping[str, Any], compact: bool = False) -> str:
    """A Choice rule as a condition (https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html):
    `And`/`Or`/`Not`, the comparison operators, `IsPresent`, `IsNull` and the type tests; JSONata `Condition`.
    `compact` keeps only the last fields of a long path."""
    if "And" in rule or "Or" in rule:
        joiner = " and " if "And" in rule else " or "
        inner = rule.get("And") or rule.get("Or") or []
        return joiner.join(_grouped(choice_text(one, compact)) for one in inner)
    if "Not" in rule:
        return "not " + _grouped(choice_text(rule["Not"], compact))
    if "Condition" in rule:
        return str(rule["Condition"])
    variable = _path(str(rule.get("Variable", "$")), compact)
    for key, value in rule.items():
        if key == "IsPresent":
            return f"{variable} {'present' if value else 'absent'}"
        if key == "IsNull":
            return f"{variable} {'is' if value else 'not'} null"
        if key in ("IsString", "IsNumeric", "IsBoolean", "IsTimestamp"):
            return f"{variable} is{'' if value else ' not'} {key[2:].lower()}"
        matched = _COMPARISON.fullmatch(key)
        if matched:
            operand = _path(str(value), compact) if matched[3] else json.dumps(value)
            return f"{variable} {_COMPARATORS[matched[2]]} {operand}"
    return json.dumps({k: v for k, v in rule.items() if k not in ("Next", "Comment")})


def _grouped(text: str) -> str:
    return f"({text})" if " and " in text or " or " in text else text


def _path(path: str, compact: bool = False, keep: int = 16) -> str:
    path = path.removeprefix("$.") if path != "$" else path
    if not compact or len(path) <= keep:
        return path
    fields = path.split(".")
    kept = fields[-1]
    for before in reversed(fields[:-1]):
        if len(before) + 1 + len(kept) > keep:
            break
        kept = f"{before}.{kept}"
    return kept if kept == path else "\u2026" + kept


def label_lines(text: str) -> list[str]:
    """An edge label in at most two short lines, broken at spaces, or after a dot inside a long name (the whole
    text is the edge's tooltip)."""
    words: list[tuple[str, bool]] = []  # (word, joins the previous one without a space)
    for whole in text.split(" "):
        word, glued = whole, False
        while len(word) > LABEL_CHARS and "." in word[1:LABEL_CHARS]:
            cut = word.rindex(".", 1, LABEL_CHARS) + 1
            words.append((word[:cut], glued))
            word, glued = word[cut:], True
        words.append((word, glued))
    lines: list[str] = []
    for word, glued in words:
        joined = (lines[-1] + ("" if glued else " ") + word) if lines else word
        if lines and len(joined) <= LABEL_CHARS:
            lines[-1] = joined
        else:
            lines.append(word)
    if len(lines) > 2:
        lines = [lines[0], lines[1] + " \u2026"]
    return [_shorten(line, LABEL_CHARS + 2) for line in lines]


def _place(scope: Scope, start: str) -> None:
    boxes, edges = scope.boxes, scope.edges
    reached, order, back = _depth_first(start, boxes, edges)
    layer = dict.fromkeys(order, 0)
    for name in order:  # each state comes after every state with a forward edge into it
        for edge in edges:
            if edge.source == name and edge not in back and edge.source != edge.target:
                layer[edge.target] = max(layer[edge.target], layer[name] + 1)
    rows: dict[int, list[_Node]] = {}
    node_of: dict[str, _Node] = {}
    for name in reached:
        node = _Node(boxes[name], 2 * layer[name], boxes[name].w + boxes[name].reserve, boxes[name].h)
        node_of[name] = node
        rows.setdefault(node.layer, []).append(node)
    chains: list[tuple[Edge, list[_Node]]] = []
    for edge in edges:
        if edge.source == edge.target:
            box = boxes[edge.source]
            edge.label_lines = label_lines(edge.label) if edge.label else []
            box.reserve = max(box.reserve, LOOP + max((text_width(t, SMALL) for t in edge.label_lines), default=0))
            node_of[edge.source].w = box.w + box.reserve
            continue
        upper, lower = (edge.target, edge.source) if edge in back else (edge.source, edge.target)
        chain = [node_of[upper]]
        label_row = node_of[lower].layer - 1 if edge in back else node_of[upper].layer + 1
        for layer_no in range(node_of[upper].layer + 1, node_of[lower].layer):
            point = _Node(None, layer_no)
            if layer_no == label_row and edge.label:
                point.lines = label_lines(edge.label)
                point.w = max(text_width(line, SMALL) for line in point.lines) + 6
                point.h = LABEL_LINE * len(point.lines) + 2
            rows.setdefault(layer_no, []).append(point)
            chain.append(point)
        chain.append(node_of[lower])
        for above, below in itertools.pairwise(chain):
            above.down.append(below)
            below.up.append(above)
        chains.append((edge, chain))
    ordered = [rows[row] for row in sorted(rows)]
    _order(ordered)
    _coordinates(ordered)
    tops: dict[int, float] = {}
    y = 0.0
    heights: dict[int, float] = {}
    for row in ordered:
        layer_no = row[0].layer
        heights[layer_no] = max((node.h for node in row), default=0)
        tops[layer_no] = y
        y += heights[layer_no] + GAP_Y
    left = min(node.x - node.w / 2 for row in ordered for node in row)
    for row in ordered:
        for node in row:
            node.x -= left
            if node.box:
                node.box.x, node.box.y = node.x - node.w / 2, tops[node.layer]
    scope.w = max(node.x + node.w / 2 for row in ordered for node in row)
    scope.h = y - GAP_Y
    bottoms = {row: tops[row] + heights[row] for row in tops}
    _route(chains, back, tops, bottoms)
    for edge in edges:
        if edge.source == edge.target:
            _loop(edge, boxes[edge.source])


def _depth_first(start: str, boxes: Mapping[str, Box], edges: Sequence[Edge]) -> tuple[list[str], list[str], set[Edge]]:
    """The states in the order first reached from StartAt (then any unreachable ones), an order where every
    forward edge points later, and the edges that go back up a path (loops)."""
    out: dict[str, list[Edge]] = {name: [] for name in boxes}
    for edge in edges:
        out[edge.source].append(edge)
    back: set[Edge] = set()
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    reached: list[str] = []
    finished: list[str] = []
    for root in [start, *boxes] if start in boxes else list(boxes):
        if root in state:
            continue
        stack: list[tuple[str, Iterator[Edge]]] = [(root, iter(out[root]))]
        state[root] = 1
        reached.append(root)
        while stack:
            current, pending = stack[-1]
            following = next(pending, None)
            if following is None:
                stack.pop()
                state[current] = 2
                finished.append(current)
            elif state.get(following.target) == 1:
                back.add(following)
            elif following.target not in state:
                state[following.target] = 1
                reached.append(following.target)
                stack.append((following.target, iter(out[following.target])))
    return reached, finished[::-1], back


def _order(rows: list[list[_Node]]) -> None:
    """Barycentre sweeps: each row sorted by the mean rank of its neighbours in the row above, then below (a node
    without neighbours there keeps its rank)."""
    for row in rows:
        for n, node in enumerate(row):
            node.x = n
    for sweep in range(8):
        downward = sweep % 2 == 0
        for row in rows[1:] if downward else rows[-2::-1]:
            keys = []
            for node in row:
                neighbours = node.up if downward else node.down
                keys.append(sum(n.x for n in neighbours) / len(neighbours) if neighbours else node.x)
            row[:] = [node for _, _, node in sorted(zip(keys, range(len(row)), row, strict=True))]
            for n, node in enumerate(row):
                node.x = n


def _coordinates(rows: list[list[_Node]]) -> None:
    """x of every node: packed, then each row pulled towards its neighbours' centres (least squares under the
    rows' order and spacing), alternately from above and from below."""
    for row in rows:
        x = 0.0
        for n, node in enumerate(row):
            x += _spacing(row[n - 1], node) if n else 0
            node.x = x + node.w / 2
            x += node.w
    for sweep in range(10):
        downward = sweep % 2 == 0
        for row in rows[1:] if downward else rows[-2::-1]:
            wanted = []
            for node in row:
                neighbours = node.up if downward else node.down
                wanted.append(sum(n.x for n in neighbours) / len(neighbours) if neighbours else node.x)
            _fit(row, wanted)


def _spacing(left: _Node, right: _Node) -> float:
    return GAP_X if left.box and right.box else POINT_GAP


def _fit(row: list[_Node], wanted: list[float]) -> None:
    """Positions closest to `wanted` (least squares) keeping the row's order and spacing: pool adjacent violators."""
    offsets = [0.0]
    for left, right in itertools.pairwise(row):
        offsets.append(offsets[-1] + left.w / 2 + _spacing(left, right) + right.w / 2)
    blocks: list[list[float]] = []  # [sum, count]
    for target, offset in zip(wanted, offsets, strict=True):
        blocks.append([target - offset, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    n = 0
    for total, count in blocks:
        for _ in range(int(count)):
            row[n].x = total / count + offsets[n]
            n += 1


def _route(
    chains: list[tuple[Edge, list[_Node]]], back: set[Edge], tops: dict[int, float], bottoms: dict[int, float]
) -> None:
    """Each edge leaves its upper box's bottom and enters its lower box's top, at ports spread along the side in
    the order of where the edges go, and runs vertically through its points. An edge back up is drawn reversed."""
    ports: dict[tuple[int, str], list[tuple[float, int]]] = {}
    for n, (_, chain) in enumerate(chains):
        ports.setdefault((id(chain[0]), "bottom"), []).append((chain[1].x, n))
        ports.setdefault((id(chain[-1]), "top"), []).append((chain[-2].x, n))
    boxes = {id(chain[0]): _box(chain[0]) for _, chain in chains} | {
        id(chain[-1]): _box(chain[-1]) for _, chain in chains
    }
    port_x: dict[tuple[int, str], float] = {}
    for (node_id, side), using in ports.items():
        box = boxes[node_id]
        span = min(box.w - 16, 24.0 * len(using))
        for k, (_, n) in enumerate(sorted(using)):
            offset = (k + 1) / (len(using) + 1) - 0.5 if len(using) > 1 else 0.0
            port_x[(n, side)] = box.x + box.w / 2 + offset * span
    for n, (edge, chain) in enumerate(chains):
        upper, lower = _box(chain[0]), _box(chain[-1])
        x0 = port_x[(n, "bottom")]
        points = [(x0, upper.y + upper.h)]
        if upper.y + upper.h < bottoms[chain[0].layer]:
            points.append((x0, bottoms[chain[0].layer]))
        for point in chain[1:-1]:
            points += [(point.x, tops[point.layer]), (point.x, tops[point.layer] + point.h)]
            if point.lines:
                edge.label_at, edge.label_lines = (point.x, tops[point.layer] + point.h / 2), point.lines
            if bottoms[point.layer] > tops[point.layer] + point.h:
                points.append((point.x, bottoms[point.layer]))
        points.append((port_x[(n, "top")], lower.y))
        edge.points = points[::-1] if edge in back else points


def _box(node: _Node) -> Box:
    if node.box is None:
        raise ValueError("an edge ends at a point, not a state")
    return node.box


def _loop(edge: Edge, box: Box) -> None:
    right, top, bottom = box.x + box.w, box.y + box.h * 0.3, box.y + box.h * 0.7
    edge.points = [(right, top), (right + LOOP - 6, top), (right + LOOP - 6, bottom), (right, bottom)]
    edge.curved = False
    if edge.label_lines:
        edge.label_at = (right + LOOP + max(text_width(t, SMALL) for t in edge.label_lines) / 2, box.y + box.h / 2)


def _place_children(box: Box) -> None:
    if not box.children:
        return
    frames = sum(child.w + 2 * FRAME_PAD for child in box.children) + GAP_X * (len(box.children) - 1)
    x = box.x + (box.w - frames) / 2
    for child in box.children:
        child.frame = (x, box.y + HEADER, child.w + 2 * FRAME_PAD, child.h + CAPTION + FRAME_PAD)
        _shift(child, x + FRAME_PAD, box.y + HEADER + CAPTION)
        x += child.w + 2 * FRAME_PAD + GAP_X


def _shift(scope: Scope, dx: float, dy: float) -> None:
    for box in scope.boxes.values():
        box.x += dx
        box.y += dy
        for child in box.children:
            fx, fy, fw, fh = child.frame
            child.frame = (fx + dx, fy + dy, fw, fh)
            _shift(child, dx, dy)
    for edge in scope.edges:
        edge.points = [(x + dx, y + dy) for x, y in edge.points]
        if edge.label_at:
            edge.label_at = (edge.label_at[0] + dx, edge.label_at[1] + dy)


def walk(scope: Scope) -> Iterator[tuple[Scope, Box]]:
    """Every box of a laid-out graph with its scope, nested ones included."""
    for box in scope.boxes.values():
        yield scope, box
        for child in box.children:
            yield from walk(child)


# -- drawing ----------------------------------------------------------------------------------------------------

# One definition of the colours: the graph, the list and the legend read them from here.
COLOURS = {
    "ok": ("#e6f4ea", "#1e8e3e", "visited"),
    "caught": ("#fef7e0", "#e37400", "failed, then retried or caught"),
    "failed": ("#fce8e6", "#d93025", "failed"),
    "running": ("#e8f0fe", "#1a73e8", "still running"),
    "unvisited": ("#f8f9fa", "#9aa0a6", "not visited"),
}
EDGE_STYLES = {  # stroke, dash, what the legend says
    "next": ("#5f6368", "", "Next"),
    "choice": ("#1a73e8", "", "Choice rule (its condition)"),
    "default": ("#1a73e8", "5 3", "Default of a Choice"),
    "catch": ("#d93025", "2 3", "Catch (the errors it takes)"),
}
TAKEN_WIDTH, EDGE_WIDTH = 2.6, 1.2
_SEVERITY = {"ok": 0, "running": 1, "caught": 2, "failed": 3}


@dataclass(frozen=True)
class Visits:
    """What the graph shows of an execution: visits and status per state name, transitions taken."""

    count: Counter[str]
    status: Mapping[str, str]
    taken: set[tuple[str, str]]
    iterations: Counter[str]

    @classmethod
    def of(cls, trace: Trace, running: bool = False) -> Visits:
        status: dict[str, str] = {}
        for step in trace.steps:  # a state's worst visit colours it
            mine = step.status(running)
            if _SEVERITY[mine] >= _SEVERITY[status.get(step.name, "ok")]:
                status[step.name] = mine
        taken: set[tuple[str, str]] = set()
        for steps in [trace.top, *(g.steps for s in trace.steps for g in s.groups)]:
            taken.update((a.name, b.name) for a, b in itertools.pairwise(steps))
        iterations = Counter({s.name: len(s.groups) for s in trace.steps if s.kind == "Map"})
        return cls(Counter(step.name for step in trace.steps), status, taken, iterations)

    def caption(self, name: str, kind: str) -> str:
        count = self.count[name]
        text = kind + (f" \u00d7{count}" if count > 1 else "")
        if kind == "Map" and count:
            text += f" \u00b7 {_count(self.iterations[name], 'iteration')}"
        return text


def render_svg(machine: Mapping[str, Any], visits: Visits) -> str:
    """The graph as inline SVG, scaled to the page's width by its viewBox; every coordinate is absolute."""
    scope = layout(machine, {name: visits.caption(name, kind) for name, kind in _kinds(machine)})
    _shift(scope, MARGIN, MARGIN)
    width, height = scope.w + 2 * MARGIN, scope.h + 2 * MARGIN
    parts: list[str] = []
    _draw(scope, visits, parts)
    markers = "".join(
        f'<marker id="arrow-{kind}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        f'markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{stroke}"/></marker>'
        for kind, (stroke, _, _) in EDGE_STYLES.items()
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans, Arial, sans-serif" font-size="{FONT}">'
        f"<defs>{markers}</defs>{''.join(parts)}</svg>"
    )


def _kinds(machine: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for name, state in machine.get("States", {}).items():
        yield name, str(state.get("Type", "?"))
        for inner in _inner_machines(state):
            yield from _kinds(inner)


def _draw(scope: Scope, visits: Visits, parts: list[str]) -> None:
    for box in scope.boxes.values():
        status = visits.status.get(box.name, "unvisited") if visits.count[box.name] else "unvisited"
        fill, stroke, _ = COLOURS[status]
        title = html.escape(f"{box.name} ({box.kind}): {COLOURS[status][2]}, entered {visits.count[box.name]}x")
        parts.append(
            f'<g class="state {status}" data-state="{html.escape(box.name)}"><title>{title}</title>'
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" rx="6" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{2 if visits.count[box.name] else 1}"/>'
            f'<text x="{box.x + box.w / 2:.1f}" y="{box.y + 16:.1f}" text-anchor="middle">'
            f"{html.escape(box.name)}</text>"
            f'<text x="{box.x + box.w / 2:.1f}" y="{box.y + 30:.1f}" text-anchor="middle" font-size="{SMALL}" '
            f'fill="#5f6368">{html.escape(box.caption)}</text></g>'
        )
        for child in box.children:
            x, y, w, h = child.frame
            dash = ' stroke-dasharray="6 3"' if box.kind == "Map" else ""
            parts.append(
                f'<g class="frame"><rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="4" '
                f'fill="#ffffff" fill-opacity="0.7" stroke="{stroke}"{dash}/>'
                f'<text x="{x + 6:.1f}" y="{y + 11:.1f}" font-size="{SMALL}" fill="#5f6368">'
                f"{html.escape(child.title)}</text></g>"
            )
            _draw(child, visits, parts)
    for edge in scope.edges:
        stroke, dash, _ = EDGE_STYLES[edge.kind]
        taken = (edge.source, edge.target) in visits.taken
        title = html.escape(f"{edge.source} \u2192 {edge.target}" + (f": {edge.title}" if edge.title else ""))
        parts.append(
            f'<g class="edge {edge.kind}{" taken" if taken else ""}" data-source="{html.escape(edge.source)}" '
            f'data-target="{html.escape(edge.target)}"><title>{title}</title>'
            f'<path d="{_path_data(edge)}" fill="none" stroke="{stroke}" '
            f'stroke-width="{TAKEN_WIDTH if taken else EDGE_WIDTH}" stroke-dasharray="{dash or "none"}" '
            f'marker-end="url(#arrow-{edge.kind})"/>'
        )
        if edge.label_at and edge.label_lines:
            x, y = edge.label_at
            w = max(text_width(line, SMALL) for line in edge.label_lines) + 4
            h = LABEL_LINE * len(edge.label_lines)
            lines = "".join(
                f'<tspan x="{x:.1f}" y="{y - h / 2 + LABEL_LINE * (k + 1) - 3:.1f}">{html.escape(line)}</tspan>'
                for k, line in enumerate(edge.label_lines)
            )
            parts.append(
                f'<rect class="label" x="{x - w / 2:.1f}" y="{y - h / 2:.1f}" width="{w:.1f}" height="{h:.1f}" '
                f'rx="2" fill="#ffffff" fill-opacity="0.9"/>'
                f'<text class="label" font-size="{SMALL}" fill="{stroke}" text-anchor="middle">{lines}</text>'
            )
        parts.append("</g>")


def _path_data(edge: Edge) -> str:
    points = edge.points
    if not points:
        return ""
    data = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    for (x1, y1), (x2, y2) in itertools.pairwise(points):
        if not edge.curved or x1 == x2 or y1 == y2:
            data.append(f"L{x2:.1f},{y2:.1f}")
        else:
            middle = (y1 + y2) / 2
            data.append(f"C{x1:.1f},{middle:.1f} {x2:.1f},{middle:.1f} {x2:.1f},{y2:.1f}")
    return " ".join(data)


# -- the page ---------------------------------------------------------------------------------------------------

PAYLOAD_CHARS = 1_500  # of one input or output shown; the record keeps the whole value
PAGE_PAYLOAD_CHARS, PAYLOAD_CHARS_OVER_BUDGET = 300_000, 200
SAME_AS_MIN = 160  # a shorter value is repeated rather than linked to


def render_html(record: Mapping[str, Any]) -> str:
    trace = read_trace(record)
    status = str(record.get("status", ""))
    running = status == "RUNNING"
    visits = Visits.of(trace, running)
    svg = render_svg(record["definition"], visits)
    payloads = _Payloads()
    origin = trace.started or (trace.steps[0].entered if trace.steps else None)
    execution_input = payloads.block(trace.input, "the execution's input", 1)
    steps = _steps_html(trace.top, payloads, origin, running)
    failure = ""
    if trace.failure:
        causes = [s for s in trace.steps if s.status(running) == "failed" and not s.errors[-1].inner]
        where = max(causes, key=lambda s: s.errors[-1].event_id, default=None)
        failure = (
            f"<div class='failure'><b>{_text(trace.failure.error)}</b>"
            + (f" in <a href='#s{where.number}'>{_text(where.name)} (#{where.number})</a>" if where else "")
            + _cause_html(trace.failure.cause)
            + "</div>"
        )
    retried = sum(step.retries for step in trace.steps)
    meta = " \u00b7 ".join(
        part
        for part in (
            f"<span class='status {_attr(status.lower())}'>{_text(status)}</span>",
            f"started {_text(_iso(trace.started))}" if trace.started else "",
            f"took {_duration(trace.seconds)}" if trace.seconds is not None else "",
            f"{_count(len(trace.steps), 'state')} entered" + (f", {retried} retries" if retried else ""),
            f"<span class='arn'>{_text(record.get('execution', ''))}</span>",
        )
        if part
    )
    output = (
        f"<details><summary>Execution output</summary>{payloads.block(trace.output, 'the execution output', 0)}"
        "</details>"
        if trace.output is not None
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_text(record["name"])} \u00b7 trace</title>
<style>{_CSS}</style></head><body>
<h1>{_text(record["state_machine"])} \u00b7 {_text(record["name"])}</h1>
<div class="meta">{meta}</div>
{failure}
{_legend()}
<input type="checkbox" id="zoom"><label for="zoom" class="zoom">actual size (scroll to pan)</label>
<div class="graph-box">{svg}</div>
<h2>Visited states</h2>
<p class="hint">In the order entered. +time: from the execution's start; then how long the state ran. Map iterations
and Parallel branches are listed under their state. An input or output already shown is linked to, not repeated;
one longer than {PAYLOAD_CHARS:,} characters is cut (the trace record keeps it whole).</p>
<details><summary>Execution input</summary>{execution_input}</details>
{steps}
{output}
</body></html>
"""


_CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 16px 24px; color: #202124; font-size: 14px; }
h1 { font-size: 18px; margin: 0 0 4px; overflow-wrap: anywhere; } h2 { font-size: 16px; margin: 20px 0 4px; }
.meta { color: #5f6368; margin-bottom: 10px; overflow-wrap: anywhere; } .status { font-weight: bold; }
.status.succeeded { color: #1e8e3e; } .status.failed, .status.timed_out, .status.aborted { color: #d93025; }
.failure { border: 1px solid #d93025; background: #fce8e6; border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: center; font-size: 12px; margin: 8px 0; }
.legend .box { display: inline-block; width: 14px; height: 10px; border: 2px solid; border-radius: 3px;
  vertical-align: middle; } .legend svg { vertical-align: middle; }
#zoom { margin: 4px 4px 4px 0; } .zoom { font-size: 12px; color: #5f6368; }
.graph-box { overflow: auto; border: 1px solid #dadce0; border-radius: 8px; padding: 4px; background: #fff; }
.graph-box svg { display: block; max-width: 100%; height: auto; margin: 0 auto; }
#zoom:checked ~ .graph-box svg { max-width: none; }
.hint { color: #5f6368; font-size: 12px; margin: 0 0 8px; }
details { border: 1px solid #dadce0; border-radius: 6px; margin: 4px 0; padding: 3px 8px; }
details details { margin-left: 8px; } summary { cursor: pointer; }
details.failed { border-color: #d93025; background: #fffafa; } details.caught { border-color: #e37400; }
details.running { border-color: #1a73e8; } details.group { background: #fafafa; }
summary small { color: #5f6368; font-size: 12px; }
.badge { font-size: 11px; border-radius: 8px; padding: 0 6px; background: #fef7e0; color: #b06000; }
.badge.failed { background: #fce8e6; color: #d93025; }
.error { color: #d93025; margin: 6px 0; } .error ul { margin: 2px 0; padding-left: 18px; }
.io { display: flex; gap: 12px; } .io > div { flex: 1; min-width: 0; } h4 { margin: 6px 0 2px; font-size: 12px; }
pre { background: #f8f9fa; padding: 6px; margin: 2px 0; overflow: auto; max-height: 320px; font-size: 12px; }
.same, .cut { color: #5f6368; font-size: 12px; margin: 2px 0; }
"""


def _legend() -> str:
    boxes = "".join(
        f"<span><span class='box' style='background:{fill};border-color:{stroke}'></span> {_text(meaning)}</span>"
        for fill, stroke, meaning in COLOURS.values()
    )
    lines = "".join(
        f"<span><svg width='34' height='10'><line x1='1' y1='5' x2='33' y2='5' stroke='{stroke}' "
        f"stroke-width='{EDGE_WIDTH}' stroke-dasharray='{dash or 'none'}'/></svg> {_text(meaning)}</span>"
        for stroke, dash, meaning in EDGE_STYLES.values()
    )
    stroke = EDGE_STYLES["next"][0]
    return (
        f"<div class='legend'>{boxes}{lines}"
        f"<span><svg width='34' height='10'><line x1='1' y1='5' x2='33' y2='5' stroke='{stroke}' "
        f"stroke-width='{TAKEN_WIDTH}'/></svg> a transition this execution took</span>"
        "<span>an edge into a box's bottom: a loop back</span>"
        "<span>\u00d7N: entered N times</span>"
        "<span>Map: dashed frame, the states run for each item</span>"
        "<span>Parallel: one frame per branch</span></div>"
    )


def _steps_html(steps: Sequence[Step], payloads: _Payloads, origin: dt.datetime | None, running: bool) -> str:
    parts = []
    previous: Step | None = None
    for step in steps:
        parts.append(_step_html(step, previous, payloads, origin, running))
        previous = step
    return "".join(parts)


def _step_html(
    step: Step, previous: Step | None, payloads: _Payloads, origin: dt.datetime | None, running: bool
) -> str:
    status = step.status(running)
    badges = ""
    if step.retries:
        badges += f" <span class='badge'>retried {step.retries}x</span>"
    if step.errors:
        badges += f" <span class='badge {status}'>{_text(step.errors[-1].error or 'error')}</span>"
    offset = _seconds(origin, step.entered)
    facts = [step.kind, step.resource, f"+{offset:.3f} s" if offset is not None else "", _duration(step.seconds)]
    if step.kind in ("Map", "Parallel"):
        facts.append(_count(len(step.groups), "iteration" if step.kind == "Map" else "branch"))
    facts_text = " \u00b7 ".join(fact for fact in facts if fact)
    summary = f"{step.number} <b>{_text(step.name)}</b> <small>{_text(facts_text)}</small>{badges}"
    body = _errors_html(step.errors)
    what = f"#{step.number} {step.name}"
    if previous is not None and previous.exited and _canonical(previous.output) == _canonical(step.input):
        link = f"<a href='#s{previous.number}'>#{previous.number} {_text(previous.name)}</a>"
        given = f"<p class='same'>the output of {link}</p>"
    else:
        given = payloads.block(step.input, f"the input of {what}", step.event_id, whole=bool(step.errors))
    if not step.exited:
        gave = "<p class='same'>none: the state did not finish</p>"
    elif _canonical(step.output) == _canonical(step.input):
        gave = "<p class='same'>its input, unchanged</p>"
    else:
        gave = payloads.block(step.output, f"the output of {what}", step.output_event, whole=bool(step.errors))
    body += f"<div class='io'><div><h4>Input</h4>{given}</div><div><h4>Output</h4>{gave}</div></div>"
    for group in step.groups:
        body += _group_html(group, payloads, origin, running)
    opened = " open" if status == "failed" else ""
    return f"<details id='s{step.number}' class='{status}'{opened}><summary>{summary}</summary>{body}</details>"


def _group_html(group: Group, payloads: _Payloads, origin: dt.datetime | None, running: bool) -> str:
    failed = group.failed or any(s.status(running) == "failed" for s in group.steps)
    if group.kind == "branch":
        title = f"branch {group.index}" + (f": {group.steps[0].name}" if group.steps else "")
    else:
        title = f"iteration {group.index}" + _item_hint(group.steps[0].input if group.steps else None)
    took = f" \u00b7 {_duration(group.seconds)}" if group.seconds is not None else ""
    return (
        f"<details class='group{' failed' if failed else ''}'{' open' if failed else ''}><summary>{_text(title)} "
        f"<small>{_count(len(group.steps), 'state')}{took}</small></summary>"
        f"{_steps_html(group.steps, payloads, origin, running)}</details>"
    )


def _item_hint(item: Any) -> str:
    """A few scalar fields of an iteration's item (and of the objects in it), to tell the iterations apart."""
    if not isinstance(item, dict):
        return ""
    values = [v for value in item.values() for v in (value.values() if isinstance(value, dict) else [value])]
    scalars = [str(v) for v in values if isinstance(v, str | int | float) and not isinstance(v, bool)]
    return ": " + _shorten(" \u00b7 ".join(scalars[:3]), 60) if scalars else ""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "es" if noun.endswith("ch") else "s")


def _errors_html(errors: Sequence[Failure]) -> str:
    if not errors:
        return ""
    items = "".join(
        f"<li>{_text(e.event)}: <b>{_text(e.error)}</b>{': ' + _text(short_cause(e.cause)) if e.cause else ''}"
        + (
            f" (the error of <a href='#s{e.inner.number}'>#{e.inner.number} {_text(e.inner.name)}</a>)"
            if e.inner
            else ""
        )
        + "</li>"
        for e in errors
    )
    return f"<div class='error'><ul>{items}</ul>{_cause_html(errors[-1].cause)}</div>"


def _cause_html(cause: str) -> str:
    if not cause:
        return ""
    parsed = _parse(cause)
    text = json.dumps(parsed, indent=1, ensure_ascii=False) if isinstance(parsed, dict | list) else cause
    return f"<pre>{_text(_shorten(text, PAYLOAD_CHARS))}</pre>"


class _Payloads:
    """Every input and output the page shows: each shown once and linked to after that, a long one cut. Once the
    page holds PAGE_PAYLOAD_CHARS of them, values are cut shorter (but not those of a state that failed), so that
    an execution of thousands of states still makes a page a browser opens at once."""

    def __init__(self) -> None:
        self._shown: dict[str, tuple[str, str]] = {}
        self.chars = 0

    def block(self, value: Any, what: str, event_id: int, *, whole: bool = False) -> str:
        if value is None:
            return "<p class='same'>none</p>"
        key = _canonical(value)
        if key in self._shown:
            anchor, where = self._shown[key]
            return f"<p class='same'>the same as <a href='#{anchor}'>{_text(where)}</a></p>"
        text = value if isinstance(value, str) else json.dumps(readable(value), indent=1, ensure_ascii=False)
        limit = PAYLOAD_CHARS if whole or self.chars < PAGE_PAYLOAD_CHARS else PAYLOAD_CHARS_OVER_BUDGET
        note = ""
        if len(text) > limit:
            note = (
                f"<p class='cut'>{len(text) - limit:,} more characters not shown: the whole value is event "
                f"{event_id} of the execution's history (its trace record)</p>"
            )
            text = text[:limit] + "\u2026"
        self.chars += len(text)
        anchor = ""
        if len(key) >= SAME_AS_MIN:
            anchor = f"v{len(self._shown)}"
            self._shown[key] = (anchor, what)
        return f"<pre{f' id={anchor}' if anchor else ''}>{_text(text)}</pre>{note}"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def readable(value: Any) -> Any:
    """A value as the page shows it: a Kinesis record's base64 `data` decoded when it is UTF-8 text or JSON.
    Pipes deliver Kinesis records with their payload base64-encoded in `data`
    (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-kinesis.html)."""
    if isinstance(value, list):
        return [readable(item) for item in value]
    if not isinstance(value, dict):
        return value
    kinesis = "kinesisSchemaVersion" in value or value.get("eventSource") == "aws:kinesis"
    shown: dict[str, Any] = {}
    for key, item in value.items():
        decoded = _decoded(item) if kinesis and key == "data" and isinstance(item, str) else None
        if decoded is not None:
            shown["data (decoded from base64)"] = decoded
        else:
            shown[key] = readable(item)
    return shown


def _decoded(data: str) -> Any:
    try:
        text = base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # not base64, or not UTF-8
        return None
    if any(ord(char) < 32 and char not in "\t\n\r" for char in text):
        return None
    parsed = _parse(text)
    return parsed if isinstance(parsed, dict | list) else text


def _text(value: Any) -> str:
    """Text between tags: only <, > and & need escaping (quotes are a fifth of a JSON value)."""
    return html.escape(str(value), quote=False)


def _attr(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _iso(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else ""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 0.001:
        return "<1 ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


# -- the terminal -----------------------------------------------------------------------------------------------


def text_path(record: Mapping[str, Any]) -> str:
    """The path an execution took, what ran inside its Map and Parallel states, and each failure's error."""
    trace = read_trace(record)
    inner = Counter(step.name for step in trace.steps if step.parent is not None)
    retried = sum(step.retries for step in trace.steps)
    took = f", {_duration(trace.seconds)}" if trace.seconds is not None else ""
    entered = _count(len(trace.steps), "state") + " entered" + (f", {retried} retries" if retried else "")
    lines = [
        f"{record['state_machine']} {record['name']}: {record['status']}{took}, {entered}",
        "  " + " -> ".join(step.name for step in trace.top),
    ]
    if inner:
        lines.append("  inside: " + ", ".join(f"{name} x{count}" for name, count in inner.items()))
    running = record.get("status") == "RUNNING"
    for status, heading in (("failed", "failed"), ("caught", "failed, then retried or caught")):
        erring: dict[str, list[Step]] = {}  # the first to fail first: an enclosing Map or Parallel fails after
        for step in sorted(trace.steps, key=lambda s: s.errors[-1].event_id if s.errors else 0):
            if step.errors and step.status(running) == status:
                erring.setdefault(step.name, []).append(step)
        if erring:
            lines.append(f"  {heading}: " + ", ".join(_erring_text(name, steps) for name, steps in erring.items()))
    named = {e.error for step in trace.steps for e in step.errors}
    if trace.failure and trace.failure.error not in named:
        lines.append(f"  execution failed: {_error_text(trace.failure)}")
    return "\n".join(lines)


def _erring_text(name: str, steps: Sequence[Step]) -> str:
    last = steps[-1].errors[-1]
    why = f"from {last.inner.name}" if last.inner else _error_text(last)
    return f"{name} x{len(steps)} ({why})"


def _error_text(failure: Failure) -> str:
    return failure.error + (f": {short_cause(failure.cause)}" if failure.cause else "")


def load_trace(folder: Path, execution: str | None) -> dict[str, Any]:
    traces = folder / "traces"
    files = sorted(traces.glob("*.json")) if traces.is_dir() else []
    files = [path for path in files if path.name != "index.json"]
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
