"""The ingest Pipe's throughput settings (docs/design.md): parameters wired to the Pipe, within what Pipes takes,
and defaults that keep up with a full shard in the throughput model."""

from __future__ import annotations

from typing import Any

from benchmarks import throughput

from incremental_analytics_local.cfn import read_template
from tests.conftest import ROOT

TEMPLATE = read_template(ROOT / "infra" / "template.yaml")
PARAMETERS: dict[str, Any] = TEMPLATE["Parameters"]
KINESIS: dict[str, Any] = TEMPLATE["Resources"]["IngestPipe"]["Properties"]["SourceParameters"][
    "KinesisStreamParameters"
]


def test_batch_size_and_parallelization_are_stack_parameters_of_the_pipe() -> None:
    assert KINESIS["BatchSize"] == {"Ref": "BatchSize"}
    assert KINESIS["ParallelizationFactor"] == {"Ref": "ParallelizationFactor"}
    # AWS::Pipes::Pipe PipeSourceKinesisStreamParameters: ParallelizationFactor 1 to 10, BatchSize 1 to 10,000.
    factor = PARAMETERS["ParallelizationFactor"]
    assert (factor["MinValue"], factor["MaxValue"]) == (1, 10)
    assert (PARAMETERS["BatchSize"]["MinValue"], PARAMETERS["BatchSize"]["MaxValue"]) == (1, 10_000)


def test_the_defaults_keep_up_with_a_full_shard_on_paper() -> None:
    batch, factor = int(PARAMETERS["BatchSize"]["Default"]), int(PARAMETERS["ParallelizationFactor"]["Default"])
    seconds = throughput.batch_seconds(throughput.median_batch(batch), throughput.commit_concurrency())
    assert batch * factor / seconds >= throughput.KINESIS_SHARD_RECORDS_PER_SECOND
    assert batch * 1 / seconds < throughput.KINESIS_SHARD_RECORDS_PER_SECOND  # one batch at a time would not
