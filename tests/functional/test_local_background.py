"""Pipes and Scheduler in the background (pipes.Background, what `serve` runs): every pipe of a stack delivers
what reaches its source, again and again, and each schedule fires when it is due, once."""

from __future__ import annotations

import datetime as dt

from incremental_analytics_local.deploy import Stack
from incremental_analytics_local.engine import LocalAws
from incremental_analytics_local.pipes import Background
from tests.functional.test_local_execution import _counters, _events, _put


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def test_each_round_delivers_what_arrived_since_the_last(aws: LocalAws, fixture_stack: Stack) -> None:
    lines: list[str] = []
    background = Background(aws, fixture_stack.pipes, {}, report=lines.append)
    assert set(background.drivers) == {"StreamPipe", "CountersPipe", "EnrichedPipe", "ReplayPipe"}  # every pipe
    _put(aws, fixture_stack, *_events(5))
    first = background.pump("StreamPipe")
    assert first.records_read == 5
    assert background.pump("StreamPipe").records_read == 0  # nothing new: nothing delivered, nothing reported
    _put(aws, fixture_stack, ("u9", {"id": "x1"}), ("u9", {"id": "x2"}))
    second = background.pump("StreamPipe")
    assert second.records_read == 2
    assert _counters(aws, fixture_stack)["user#u9"] == 2
    assert len(aws.executions(fixture_stack.ref("Ingest"))) == first.batches + second.batches
    assert lines == [
        f"StreamPipe: 5 record(s), {first.batches} batch(es) -> {first.batches} SUCCEEDED",
        "StreamPipe: 2 record(s), 1 batch(es) -> 1 SUCCEEDED",
    ]
    # The counters table's stream, through its filter, to the Standard workflow (fire and forget).
    report = background.pump("CountersPipe")
    assert report.records_read > 0 and all(e.status == "SUCCEEDED" for e in report.executions)


def test_a_schedule_fires_when_due_and_then_an_hour_later(aws: LocalAws, fixture_stack: Stack) -> None:
    clock = Clock(dt.datetime(2021, 2, 1, 12, 0, 5, tzinfo=dt.UTC))
    background = Background(aws, {}, fixture_stack.schedules, clock=clock)
    assert background.due == {"Hourly": dt.datetime(2021, 2, 1, 13, 0, 5, tzinfo=dt.UTC)}
    assert background.fire_due() == []
    clock.now = dt.datetime(2021, 2, 1, 14, 30, tzinfo=dt.UTC)  # two periods passed: each fires, in turn
    (first,) = background.fire_due()
    (second,) = background.fire_due()
    assert background.fire_due() == []
    assert background.due["Hourly"] == dt.datetime(2021, 2, 1, 15, 0, 5, tzinfo=dt.UTC)
    outputs = [aws.wait_for_execution(started.arn).output for started in (first, second)]
    assert outputs == [{"scheduled_for": "2021-02-01T13:00:05Z"}, {"scheduled_for": "2021-02-01T14:00:05Z"}]
