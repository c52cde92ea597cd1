"""The trace page and the text trace, from history events in the shape GetExecutionHistory returns
(https://docs.aws.amazon.com/step-functions/latest/apireference/API_HistoryEvent.html), and the graph of every
workflow the product deploys."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from incremental_analytics_cli import trace
from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / "statemachines").glob("*.asl.json"))
SVG = "{http://www.w3.org/2000/svg}"
START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)

# -- reading the drawn SVG back ---------------------------------------------------------------------------------


@dataclass
class Drawn:
    width: float
    height: float
    boxes: dict[str, tuple[float, float, float, float]]
    edges: list[DrawnEdge]


@dataclass
class DrawnEdge:
    source: str
    target: str
    kind: str
    title: str
    points: list[tuple[float, float]]  # sampled along the path
    start: tuple[float, float]
    end: tuple[float, float]
    label: str
    label_box: tuple[float, float, float, float] | None


def drawn(svg_text: str) -> Drawn:
    svg = ET.fromstring(svg_text)
    _, _, width, height = (float(v) for v in svg.attrib["viewBox"].split())
    boxes = {}
    edges = []
    for group in svg.iter(f"{SVG}g"):
        classes = group.attrib.get("class", "").split()
        if "state" in classes:
            rect = group.find(f"{SVG}rect")
            assert rect is not None
            boxes[group.attrib["data-state"]] = _rect(rect)
        elif "edge" in classes:
            path = group.find(f"{SVG}path")
            title = group.find(f"{SVG}title")
            label = group.find(f"{SVG}text")
            label_rect = group.find(f"{SVG}rect")
            assert path is not None and title is not None
            points, start, end = sample(path.attrib["d"])
            edges.append(
                DrawnEdge(
                    group.attrib["data-source"],
                    group.attrib["data-target"],
                    classes[1],
                    title.text or "",
                    points,
                    start,
                    end,
                    " ".join(t.text or "" for t in label.iter(f"{SVG}tspan")) if label is not None else "",
                    _rect(label_rect) if label_rect is not None else None,
                )
            )
    return Drawn(width, height, boxes, edges)


def _rect(element: ET.Element) -> tuple[float, float, float, float]:
    x, y, w, h = (float(element.attrib[k]) for k in ("x", "y", "width", "height"))
    return x, y, w, h


def sample(d: str) -> tuple[list[tuple[float, float]], tuple[float, float], tuple[float, float]]:
    """Points along an SVG path of M, L and cubic C commands (absolute coordinates)."""
    points: list[tuple[float, float]] = []
    current = (0.0, 0.0)
    for command, args in re.findall(r"([MLC])([^MLC]*)", d):
        numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", args)]
        if command == "M":
            current = (numbers[0], numbers[1])
            points.append(current)
        elif command == "L":
            target = (numbers[0], numbers[1])
            points += [_lerp(current, target, t / 20) for t in range(1, 21)]
            current = target
        else:
            c1, c2, target = (numbers[0], numbers[1]), (numbers[2], numbers[3]), (numbers[4], numbers[5])
            points += [_bezier(current, c1, c2, target, t / 20) for t in range(1, 21)]
            current = target
    return points, points[0], points[-1]


def _lerp(a: tuple[float, float], b: tuple[float, float], t: float) -> tuple[float, float]:
    return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t


def _bezier(
    p0: tuple[float, float], p1: tuple[float, float], p2: tuple[float, float], p3: tuple[float, float], t: float
) -> tuple[float, float]:
    u = 1 - t
    return (
        u**3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t**3 * p3[0],
        u**3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t**3 * p3[1],
    )


def inside(point: tuple[float, float], box: tuple[float, float, float, float], margin: float = 0.0) -> bool:
    x, y, w, h = box
    return x + margin < point[0] < x + w - margin and y + margin < point[1] < y + h - margin


def on_border(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    x, y, w, h = box
    px, py = point
    near = 0.11
    on_horizontal = x - near <= px <= x + w + near and (abs(py - y) < near or abs(py - y - h) < near)
    on_vertical = y - near <= py <= y + h + near and (abs(px - x) < near or abs(px - x - w) < near)
    return on_horizontal or on_vertical


def overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def scopes(machine: Mapping[str, Any], owner: str | None = None) -> Iterator[tuple[str | None, Mapping[str, Any]]]:
    """Each States object of a definition with the Map or Parallel state holding it (None: the machine's)."""
    yield owner, machine["States"]
    for name, state in machine["States"].items():
        processor = state.get("ItemProcessor") or state.get("Iterator")
        for inner in [*(state.get("Branches") or []), *([processor] if processor else [])]:
            yield from scopes(inner, name)


def graph_of(machine: Mapping[str, Any], history: list[dict[str, Any]] | None = None) -> Drawn:
    record = {"name": "x", "state_machine": "m", "status": "SUCCEEDED", "definition": machine, "history": history or []}
    return drawn(trace.render_svg(machine, trace.Visits.of(trace.read_trace(record))))


# -- the graph of every workflow --------------------------------------------------------------------------------


@pytest.fixture(params=WORKFLOWS, ids=lambda path: path.name.removesuffix(".asl.json"))
def workflow(request: pytest.FixtureRequest) -> dict[str, Any]:
    definition: dict[str, Any] = json.loads(Path(request.param).read_text())
    return definition


def test_every_edge_is_inside_the_drawing_and_runs_from_its_source_to_its_target(workflow: dict[str, Any]) -> None:
    graph = graph_of(workflow)
    transitions = sum(len(_targets(state)) for _, states in scopes(workflow) for state in states.values())
    assert len(graph.edges) == transitions
    for edge in graph.edges:
        assert all(0 <= x <= graph.width and 0 <= y <= graph.height for x, y in edge.points), edge
        assert on_border(edge.start, graph.boxes[edge.source]), (edge.source, edge.target, edge.start)
        assert on_border(edge.end, graph.boxes[edge.target]), (edge.source, edge.target, edge.end)


def test_no_edge_runs_through_a_box_and_each_stays_inside_its_map_or_parallel(workflow: dict[str, Any]) -> None:
    graph = graph_of(workflow)
    for owner, states in scopes(workflow):
        for edge in (e for e in graph.edges if e.source in states):
            for name in states:
                crossing = [p for p in edge.points if inside(p, graph.boxes[name], margin=0.5)]
                assert not crossing, f"{edge.source} -> {edge.target} runs through {name} at {crossing[0]}"
            if owner is not None:
                assert all(inside(p, graph.boxes[owner]) for p in edge.points), (owner, edge.source, edge.target)


def test_edges_carry_their_choice_rule_catch_errors_and_default(workflow: dict[str, Any]) -> None:
    graph = graph_of(workflow)
    for _, states in scopes(workflow):
        for name, state in states.items():
            drawn_from = [e for e in graph.edges if e.source == name]
            for choice in state.get("Choices", []):
                rule = trace.choice_text(choice)
                edge = next(e for e in drawn_from if e.kind == "choice" and e.title.endswith(f": {rule}"))
                assert edge.target == choice["Next"] and edge.label
                # Each word of the label is a word of the rule, a path maybe shortened (…) inside a group's ( ).
                assert all(word.strip("()\u2026") in rule for word in edge.label.split()), (edge.label, rule)
            if "Default" in state:
                assert any(e.kind == "default" and e.label == "Default" for e in drawn_from)
            for catch in state.get("Catch", []):
                edge = next(e for e in drawn_from if e.kind == "catch" and e.target == catch["Next"])
                assert edge.label.startswith("catch ") and ", ".join(catch["ErrorEquals"]) in edge.title


def test_labels_overlap_no_box_of_their_scope_and_no_other_label(workflow: dict[str, Any]) -> None:
    graph = graph_of(workflow)
    labelled = [e for e in graph.edges if e.label_box]
    for owner, states in scopes(workflow):
        for edge in (e for e in labelled if e.source in states):
            assert edge.label_box is not None
            for name in states:
                assert not overlap(edge.label_box, graph.boxes[name]), (edge.source, edge.target, name)
            if owner is not None:
                x, y, w, h = edge.label_box
                assert inside((x, y), graph.boxes[owner]) and inside((x + w, y + h), graph.boxes[owner])
    for n, edge in enumerate(labelled):
        for other in labelled[n + 1 :]:
            assert edge.label_box and other.label_box and not overlap(edge.label_box, other.label_box), (edge, other)


def test_every_box_is_wide_enough_for_its_name_and_caption(workflow: dict[str, Any]) -> None:
    for _, box in trace.walk(trace.layout(workflow, {"ChunkWhere": "Choice \u00d738"})):
        assert box.w >= trace.text_width(box.name, trace.FONT) + 2 * trace.PAD_X - 0.01
        assert box.w >= trace.text_width(box.caption, trace.SMALL) + 2 * trace.PAD_X - 0.01


def _targets(state: Mapping[str, Any]) -> list[str]:
    return [
        *([state["Next"]] if "Next" in state else []),
        *(choice["Next"] for choice in state.get("Choices", [])),
        *([state["Default"]] if "Default" in state else []),
        *(catch["Next"] for catch in state.get("Catch", [])),
    ]


def test_a_loop_back_enters_its_target_from_below_and_a_skip_goes_around_the_state_it_skips() -> None:
    machine = {
        "StartAt": "Ask",
        "States": {
            "Ask": {"Type": "Choice", "Choices": [{"Variable": "$.skip", "BooleanEquals": True, "Next": "Last"}],
                    "Default": "Work"},
            "Work": {"Type": "Pass", "Next": "Again"},
            "Again": {"Type": "Choice", "Choices": [{"Variable": "$.more", "IsPresent": True, "Next": "Ask"}],
                      "Default": "Last"},
            "Last": {"Type": "Succeed"},
        },
    }  # fmt: skip
    graph = graph_of(machine)
    back = next(e for e in graph.edges if (e.source, e.target) == ("Again", "Ask"))
    _, y, _, h = graph.boxes["Ask"]
    assert abs(back.end[1] - (y + h)) < 0.11 and back.start[1] == pytest.approx(graph.boxes["Again"][1], abs=0.11)
    skip = next(e for e in graph.edges if (e.source, e.target) == ("Ask", "Last"))
    assert not any(inside(p, graph.boxes[name]) for p in skip.points for name in ("Work", "Again"))
    assert graph.boxes["Last"][1] > graph.boxes["Again"][1] > graph.boxes["Work"][1] > graph.boxes["Ask"][1]


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        ({"Variable": "$.rejects[0]", "IsPresent": True}, "rejects[0] present"),
        ({"Variable": "$.count", "NumericGreaterThanEquals": 5}, "count >= 5"),
        ({"Variable": "$.position.index", "NumericLessThanPath": "$.last"}, "position.index < last"),
        ({"Variable": "$.kind", "StringEquals": "reached"}, 'kind == "reached"'),
        ({"Variable": "$.key", "StringMatches": "*.errors.json"}, 'key matches "*.errors.json"'),
        ({"Variable": "$.closes", "BooleanEquals": True}, "closes == true"),
        ({"Variable": "$.id", "IsNull": False}, "id not null"),
        ({"Variable": "$.at", "IsTimestamp": True}, "at is timestamp"),
        ({"Not": {"Variable": "$.a", "IsPresent": True}}, "not a present"),
        (
            {"Or": [{"Variable": "$.a", "NumericEquals": 1}, {"And": [{"Variable": "$.b", "IsPresent": True},
             {"Variable": "$.c", "StringLessThan": "m"}]}]},
            'a == 1 or (b present and c < "m")',
        ),
        ({"Condition": "{% $states.input.n > 3 %}"}, "{% $states.input.n > 3 %}"),
    ],
)  # fmt: skip
def test_a_choice_rule_reads_as_its_condition(rule: dict[str, Any], text: str) -> None:
    assert trace.choice_text(rule) == text


def test_a_long_rule_keeps_the_end_of_its_paths_and_fits_two_short_lines() -> None:
    rule = {"Variable": "$.settings.pinpoint_application_id", "StringEquals": ""}
    assert trace.choice_text(rule, compact=True) == '\u2026pinpoint_application_id == ""'
    assert trace.choice_text({"Variable": "$.pinpoint_application_id", "IsPresent": True}, compact=True) == (
        "pinpoint_application_id present"  # nothing left out: no ellipsis
    )
    assert trace.label_lines(trace.choice_text(rule, compact=True)) == ["\u2026pinpoint_application_id", '== ""']
    lines = trace.label_lines("catch DynamoDb.TransactionCanceled, States.Timeout, States.TaskFailed")
    assert len(lines) == 2 and all(len(line) <= trace.LABEL_CHARS + 2 for line in lines)
    assert lines[0] == "catch DynamoDb." and lines[1].startswith("TransactionCanceled,")


# -- an execution's history -------------------------------------------------------------------------------------

FAN_OUT = {
    "StartAt": "Parse",
    "States": {
        "Parse": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Fan"},
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "Each",
                    "States": {
                        "Each": {
                            "Type": "Map",
                            "ItemProcessor": {"StartAt": "Work", "States": {"Work": {"Type": "Pass", "End": True}}},
                            "End": True,
                        }
                    },
                },
                {"StartAt": "Note", "States": {"Note": {"Type": "Pass", "End": True}}},
            ],
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


class History:
    """History events written the way Step Functions records them: ids from 1, each naming the one before it in
    its own thread, a timestamp (here milliseconds after START)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(self, kind: str, previous: int, ms: int, **details: Any) -> int:
        event: dict[str, Any] = {
            "id": len(self.events) + 1,
            "previousEventId": previous,
            "type": kind,
            "timestamp": str(START + dt.timedelta(milliseconds=ms)),
        }
        event.update(details)
        self.events.append(event)
        return len(self.events)

    def entered(self, kind: str, previous: int, ms: int, name: str, value: Any) -> int:
        details = {"name": name, "input": json.dumps(value), "inputDetails": {"truncated": False}}
        return self.add(f"{kind}StateEntered", previous, ms, stateEnteredEventDetails=details)

    def exited(self, kind: str, previous: int, ms: int, name: str, value: Any) -> int:
        details = {"name": name, "output": json.dumps(value), "outputDetails": {"truncated": False}}
        return self.add(f"{kind}StateExited", previous, ms, stateExitedEventDetails=details)

    def record(self, machine: Mapping[str, Any], status: str = "SUCCEEDED") -> dict[str, Any]:
        arn = "arn:aws:states:us-east-1:123456789012:execution:Machine:run-1"
        return {"execution": arn, "name": "run-1", "state_machine": "Machine", "status": status,
                "definition": machine, "history": self.events}  # fmt: skip


def fan_out_history() -> History:
    """Parse, then a Parallel whose first branch maps two items concurrently (their events interleaved) and whose
    second branch runs one Pass state; the Map's second item takes 40 ms."""
    h = History()
    started = h.add("ExecutionStarted", 0, 0, executionStartedEventDetails={"input": json.dumps({"items": [1, 2]})})
    parse = h.entered("Task", started, 1, "Parse", {"items": [1, 2]})
    scheduled = h.add("TaskScheduled", parse, 2, taskScheduledEventDetails={"resource": "invoke",
                      "resourceType": "lambda", "region": "us-east-1", "parameters": "{}"})  # fmt: skip
    done = h.add("TaskSucceeded", scheduled, 250, taskSucceededEventDetails={"output": "{}"})
    parsed = h.exited("Task", done, 251, "Parse", {"items": [1, 2]})
    fan = h.entered("Parallel", parsed, 252, "Fan", {"items": [1, 2]})
    fan_started = h.add("ParallelStateStarted", fan, 253)
    each = h.entered("Map", fan_started, 254, "Each", {"items": [1, 2]})
    note = h.entered("Pass", fan_started, 254, "Note", {"items": [1, 2]})
    map_started = h.add("MapStateStarted", each, 255, mapStateStartedEventDetails={"length": 2})
    first = h.add("MapIterationStarted", map_started, 256, mapIterationStartedEventDetails={"name": "Each", "index": 0})
    second = h.add(
        "MapIterationStarted", map_started, 256, mapIterationStartedEventDetails={"name": "Each", "index": 1}
    )
    work_1 = h.entered("Pass", second, 257, "Work", {"item": 2})
    work_0 = h.entered("Pass", first, 258, "Work", {"item": 1})
    noted = h.exited("Pass", note, 259, "Note", {"noted": True})
    worked_0 = h.exited("Pass", work_0, 260, "Work", {"item": 1, "done": True})
    worked_1 = h.exited("Pass", work_1, 297, "Work", {"item": 2, "done": True})
    h.add("MapIterationSucceeded", worked_0, 261, mapIterationSucceededEventDetails={"name": "Each", "index": 0})
    last = h.add("MapIterationSucceeded", worked_1, 298, mapIterationSucceededEventDetails={"name": "Each", "index": 1})
    map_done = h.add("MapStateSucceeded", last, 299)
    mapped = h.exited("Map", map_done, 300, "Each", [{"item": 1, "done": True}, {"item": 2, "done": True}])
    fan_done = h.add("ParallelStateSucceeded", mapped, 301)
    del noted
    fanned = h.exited("Parallel", fan_done, 302, "Fan", [[], {"noted": True}])
    succeed = h.entered("Succeed", fanned, 303, "Done", {})
    finished = h.exited("Succeed", succeed, 304, "Done", {})
    h.add("ExecutionSucceeded", finished, 305, executionSucceededEventDetails={"output": "{}"})
    return h


def test_map_iterations_and_parallel_branches_are_grouped_with_their_index() -> None:
    record = fan_out_history().record(FAN_OUT)
    read = trace.read_trace(record)
    assert [step.name for step in read.top] == ["Parse", "Fan", "Done"]
    fan = read.top[1]
    assert [(g.kind, g.index, [s.name for s in g.steps]) for g in fan.groups] == [
        ("branch", 0, ["Each"]),
        ("branch", 1, ["Note"]),
    ]
    each = fan.groups[0].steps[0]
    assert [(g.index, [s.input for s in g.steps]) for g in each.groups] == [(0, [{"item": 1}]), (1, [{"item": 2}])]
    assert each.output == [{"item": 1, "done": True}, {"item": 2, "done": True}]
    assert each.groups[1].steps[0].output == {"item": 2, "done": True}
    page = trace.render_html(record)
    assert "branch 0: Each" in page and "branch 1: Note" in page
    assert page.index("iteration 0: 1") < page.index("iteration 1: 2")
    assert "2 iterations" in page and "2 branches" in page
    svg = graph_of(FAN_OUT, fan_out_history().events)
    assert {(e.source, e.target) for e in svg.edges} == {("Parse", "Fan"), ("Fan", "Done")}


def test_a_map_state_entered_with_no_iteration_event_before_it_starts_an_iteration() -> None:
    h = History()
    started = h.add("ExecutionStarted", 0, 0, executionStartedEventDetails={"input": "{}"})
    each = h.entered("Map", started, 1, "Each", {})
    map_started = h.add("MapStateStarted", each, 2, mapStateStartedEventDetails={"length": 2})
    for item in (1, 2):
        work = h.entered("Pass", map_started, 3, "Work", {"item": item})
        h.exited("Pass", work, 4, "Work", {"item": item})
    machine = {"StartAt": "Each", "States": {"Each": FAN_OUT["States"]["Fan"]["Branches"][0]["States"]["Each"]}}
    each_step = trace.read_trace(h.record(machine, "RUNNING")).top[0]
    assert [(g.index, [s.input for s in g.steps]) for g in each_step.groups] == [(0, [{"item": 1}]), (1, [{"item": 2}])]


def test_each_state_shows_when_it_started_and_how_long_it_ran() -> None:
    record = fan_out_history().record(FAN_OUT)
    read = trace.read_trace(record)
    parse = read.top[0]
    assert parse.resource == "lambda:invoke"
    assert parse.seconds == pytest.approx(0.250)
    work_1 = read.top[1].groups[0].steps[0].groups[1].steps[0]
    assert work_1.seconds == pytest.approx(0.040)
    page = trace.render_html(record)
    assert "Parse</b> <small>Task \u00b7 lambda:invoke \u00b7 +0.001 s \u00b7 250 ms</small>" in page
    assert "Work</b> <small>Pass \u00b7 +0.257 s \u00b7 40 ms</small>" in page
    assert "started 2026-03-01T12:00:00.000Z" in page and "took 305 ms" in page


def test_timestamps_are_read_as_boto3_gives_them_as_text_or_as_epoch_numbers() -> None:
    moment = dt.datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=dt.UTC)
    for value in (moment, str(moment), moment.isoformat().replace("+00:00", "Z"), moment.timestamp(),
                  int(moment.timestamp() * 1000), str(int(moment.timestamp() * 1000))):  # fmt: skip
        assert trace._time(value) == moment, value


LAMBDA_UNKNOWN_CAUSE = json.dumps(
    {
        "errorType": "Runtime.ExitError",
        "errorMessage": "RequestId: 6f1e Error: Runtime exited with error: signal: killed",
    }
)


def failed_parse() -> dict[str, Any]:
    """The execution fails in its first Task: Lambda reports an unhandled error (out of memory, a timeout) as
    Lambda.Unknown (https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html)."""
    h = History()
    started = h.add("ExecutionStarted", 0, 0, executionStartedEventDetails={"input": "{}"})
    parse = h.entered("Task", started, 1, "Parse", {})
    scheduled = h.add("TaskScheduled", parse, 2, taskScheduledEventDetails={"resource": "invoke",
                      "resourceType": "lambda", "region": "us-east-1", "parameters": "{}"})  # fmt: skip
    failed = h.add("TaskFailed", scheduled, 900, taskFailedEventDetails={"error": "Lambda.Unknown",
                   "cause": LAMBDA_UNKNOWN_CAUSE, "resource": "invoke", "resourceType": "lambda"})  # fmt: skip
    h.add("ExecutionFailed", failed, 901, executionFailedEventDetails={"error": "Lambda.Unknown",
          "cause": LAMBDA_UNKNOWN_CAUSE})  # fmt: skip
    return h.record(FAN_OUT, "FAILED")


def test_the_text_trace_names_the_error_and_cause_of_a_failure() -> None:
    text = trace.text_path(failed_parse())
    assert text.splitlines() == [
        "Machine run-1: FAILED, 901 ms, 1 state entered",
        "  Parse",
        "  failed: Parse x1 (Lambda.Unknown: RequestId: 6f1e Error: Runtime exited with error: signal: killed)",
    ]


def test_the_page_shows_the_failure_error_and_cause() -> None:
    page = trace.render_html(failed_parse())
    failure = page[page.index("<div class='failure'>") :]
    failure = failure[: failure.index("</div>")]
    assert "<b>Lambda.Unknown</b> in <a href='#s1'>Parse (#1)</a>" in failure
    assert '"errorType": "Runtime.ExitError"' in failure and "signal: killed" in failure
    step = page[page.index("<details id='s1'") :]
    assert step.startswith("<details id='s1' class='failed' open>")
    graph = graph_of(FAN_OUT, failed_parse()["history"])
    assert graph.edges  # drawn even when the execution stopped at once
    assert 'class="state failed" data-state="Parse"' in trace.render_html(failed_parse())


def test_a_failed_map_or_parallel_carries_the_error_of_the_state_inside_it() -> None:
    h = History()
    started = h.add("ExecutionStarted", 0, 0, executionStartedEventDetails={"input": "{}"})
    fan = h.entered("Parallel", started, 1, "Fan", {})
    fan_started = h.add("ParallelStateStarted", fan, 2)
    each = h.entered("Map", fan_started, 3, "Each", {})
    map_started = h.add("MapStateStarted", each, 4, mapStateStartedEventDetails={"length": 1})
    first = h.add("MapIterationStarted", map_started, 5, mapIterationStartedEventDetails={"name": "Each", "index": 0})
    work = h.entered("Pass", first, 6, "Work", {})
    failed = h.add("PassStateFailed", work, 7, passStateFailedEventDetails={"error": "States.Runtime",
                   "cause": "An error occurred while executing the state 'Work'."})  # fmt: skip
    iteration = h.add("MapIterationFailed", failed, 8, mapIterationFailedEventDetails={"name": "Each", "index": 0})
    map_failed = h.add("MapStateFailed", iteration, 9)
    fan_failed = h.add("ParallelStateFailed", map_failed, 10)
    h.add("ExecutionFailed", fan_failed, 11, executionFailedEventDetails={"error": "States.Runtime",
          "cause": "An error occurred while executing the state 'Work'."})  # fmt: skip
    record = h.record(FAN_OUT, "FAILED")
    read = trace.read_trace(record)
    fan_step = read.top[0]
    each_step = fan_step.groups[0].steps[0]
    assert each_step.groups[0].failed
    assert [(s.name, s.status(), s.errors[-1].error) for s in (fan_step, each_step)] == [
        ("Fan", "failed", "States.Runtime"),
        ("Each", "failed", "States.Runtime"),
    ]
    assert each_step.errors[-1].inner is each_step.groups[0].steps[0]
    assert "failed: Work x1 (States.Runtime: An error occurred while executing the state 'Work'.), Each x1 (from " \
        "Work), Fan x1 (from Each)" in trace.text_path(record)  # fmt: skip
    page = trace.render_html(record)
    assert "<a href='#s3'>Work (#3)</a>" in page  # the failure names the state it started in


def test_a_retried_or_caught_failure_is_amber_and_listed_apart() -> None:
    h = History()
    started = h.add("ExecutionStarted", 0, 0, executionStartedEventDetails={"input": "{}"})
    parse = h.entered("Task", started, 1, "Parse", {})
    previous = parse
    for attempt in range(2):
        scheduled = h.add("TaskScheduled", previous, 2 + attempt, taskScheduledEventDetails={"resource": "invoke",
                          "resourceType": "lambda"})  # fmt: skip
        previous = h.add("TaskFailed", scheduled, 3 + attempt, taskFailedEventDetails={
            "error": "Lambda.TooManyRequestsException", "cause": "Rate exceeded"})  # fmt: skip
    scheduled = h.add("TaskScheduled", previous, 10, taskScheduledEventDetails={"resource": "invoke",
                      "resourceType": "lambda"})  # fmt: skip
    succeeded = h.add("TaskSucceeded", scheduled, 11, taskSucceededEventDetails={"output": "{}"})
    parsed = h.exited("Task", succeeded, 12, "Parse", {})
    h.add("ExecutionSucceeded", parsed, 13, executionSucceededEventDetails={"output": "{}"})
    record = h.record(FAN_OUT)
    step = trace.read_trace(record).top[0]
    assert (step.attempts, step.retries, step.status()) == (3, 2, "caught")
    assert "failed, then retried or caught: Parse x1 (Lambda.TooManyRequestsException: Rate exceeded)" in (
        trace.text_path(record)
    )
    assert "2 retries" in trace.text_path(record).splitlines()[0]
    assert 'class="state caught" data-state="Parse"' in trace.render_html(record)


# -- what the page shows of inputs and outputs ------------------------------------------------------------------

# The example record of https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-kinesis.html
PIPES_KINESIS_RECORD = {
    "kinesisSchemaVersion": "1.0",
    "partitionKey": "1",
    "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
    "data": "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==",
    "approximateArrivalTimestamp": 1545084650.987,
    "eventSource": "aws:kinesis",
    "eventVersion": "1.0",
    "eventID": "shardId-000000000006:49590338271490256608559692538361571095921575989136588898",
    "eventName": "aws:kinesis:record",
    "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
    "awsRegion": "us-east-2",
    "eventSourceARN": "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream",
}


def test_kinesis_data_is_decoded_when_it_is_utf8_text_or_json() -> None:
    event = {"user_id": "u1", "event_type": "greenbutton", "timestamp": 1796132827854}
    as_json = {**PIPES_KINESIS_RECORD, "data": base64.b64encode(json.dumps(event).encode()).decode()}
    binary = {**PIPES_KINESIS_RECORD, "data": base64.b64encode(bytes([0, 159, 146, 150])).decode()}
    shown = trace.readable([PIPES_KINESIS_RECORD, as_json, binary, {"data": PIPES_KINESIS_RECORD["data"]}])
    assert shown[0]["data (decoded from base64)"] == "Hello, this is a test." and "data" not in shown[0]
    assert shown[1]["data (decoded from base64)"] == event
    assert shown[2]["data"] == binary["data"]  # not UTF-8: left as it came
    assert shown[3] == {"data": PIPES_KINESIS_RECORD["data"]}  # not a Kinesis record
    h = History()
    started = h.add("ExecutionStarted", 0, 0, executionStartedEventDetails={"input": json.dumps([as_json])})
    h.entered("Task", started, 1, "Parse", [as_json])
    page = trace.render_html(h.record(FAN_OUT, "RUNNING"))
    assert '"data (decoded from base64)": {\n   "user_id": "u1",' in page
    assert "the same as <a href='#v0'>the execution's input</a>" in page


def test_a_value_is_shown_once_then_linked_and_a_long_one_is_cut() -> None:
    big = {"events": [{"event_id": f"{n:032x}", "user_id": f"user-{n % 7}"} for n in range(400)]}
    h = History()
    started = h.add("ExecutionStarted", 0, 0, executionStartedEventDetails={"input": "{}"})
    parse = h.entered("Task", started, 1, "Parse", {})
    parsed = h.exited("Task", parse, 2, "Parse", big)
    fan = h.entered("Parallel", parsed, 3, "Fan", big)
    h.exited("Parallel", fan, 4, "Fan", big)
    page = trace.render_html(h.record(FAN_OUT, "RUNNING"))
    assert page.count('"event_id": "00000000000000000000000000000000"') == 1
    assert "the output of <a href='#s1'>#1 Parse</a>" in page and "its input, unchanged" in page
    whole = len(json.dumps(trace.readable(big), indent=1, ensure_ascii=False))
    assert f"{whole - trace.PAYLOAD_CHARS:,} more characters not shown: the whole value is event 3" in page


def test_a_long_execution_cuts_values_shorter_once_the_page_holds_its_share() -> None:
    h = History()
    previous = h.add("ExecutionStarted", 0, 0, executionStartedEventDetails={"input": "{}"})
    for n in range(400):  # 400 states, each giving a different 3 KB value
        entered = h.entered("Pass", previous, n, "Parse", {"n": n - 1})
        previous = h.exited("Pass", entered, n, "Parse", {"n": n, "blob": f"{n:04d}" * 750})
    page = trace.render_html(h.record(FAN_OUT, "RUNNING"))
    values = re.findall(r"<pre[^>]*>(.*?)</pre>", page, re.DOTALL)  # in the order shown, inputs included
    shown = [len(text) for text in values if "blob" in text]
    assert len(shown) == 400 and page.count("more characters not shown") == 400
    short = next(n for n, text in enumerate(values) if "blob" in text and len(text) < trace.PAYLOAD_CHARS)
    assert trace.PAGE_PAYLOAD_CHARS <= sum(len(text) for text in values[:short]) < trace.PAGE_PAYLOAD_CHARS + 1_600
    cut_at = shown.index(trace.PAYLOAD_CHARS_OVER_BUDGET + 1)  # "…" ends a cut value
    assert set(shown[:cut_at]) == {trace.PAYLOAD_CHARS + 1}
    assert set(shown[cut_at:]) == {trace.PAYLOAD_CHARS_OVER_BUDGET + 1}
    assert len(page.encode()) < 1.2 * trace.PAGE_PAYLOAD_CHARS + 400 * 600


def test_the_page_is_self_contained() -> None:
    page = trace.render_html(fan_out_history().record(FAN_OUT))
    assert "<script" not in page and "@import" not in page and "<link" not in page
    assert re.findall(r"https?://[^\s\"'<]+", page) == ["http://www.w3.org/2000/svg"]
    assert all(reference.startswith("#") for reference in re.findall(r"url\(([^)]*)\)", page))


def test_the_legend_names_every_colour_and_edge_style_the_graph_uses() -> None:
    page = trace.render_html(fan_out_history().record(FAN_OUT))
    legend = page[page.index("<div class='legend'>") :]
    legend = legend[: legend.index("</div>")]
    for fill, stroke, meaning in trace.COLOURS.values():
        assert f"background:{fill};border-color:{stroke}'></span> {meaning}" in legend
    for stroke, dash, meaning in trace.EDGE_STYLES.values():
        assert f"stroke='{stroke}' stroke-width='{trace.EDGE_WIDTH}' stroke-dasharray='{dash or 'none'}'/></svg> " \
            f"{meaning}" in legend  # fmt: skip
    assert "a transition this execution took" in legend and "a loop back" in legend and "entered N times" in legend
    assert "Map: dashed frame" in legend and "Parallel: one frame per branch" in legend
