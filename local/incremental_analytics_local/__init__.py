"""The embedded local AWS: moto with state machines executed, in-process Lambda, the SAM deployer, the Pipes and
Scheduler emulation, the Pinpoint and Customer Profiles fakes, the AWS rules it enforces, and the product deployed
on it. Nothing here ships to Lambda.

The names below are its public surface: the operator command line (`incremental_analytics_cli`) uses these and
nothing else of it."""

from incremental_analytics_local.startup import botocore_data_read_once

with botocore_data_read_once():  # moto's import makes boto3 sessions that each parse botocore's endpoint data
    from incremental_analytics_local import execution_logs
    from incremental_analytics_local.aws_rules import KINESIS_PARTITION_KEY_CHARACTERS, KINESIS_RECORD_DATA_BYTES
    from incremental_analytics_local.engine import ExecutionResult, LocalAws
    from incremental_analytics_local.faults import Fault, FaultError, parse_fault
    from incremental_analytics_local.pipes import Background
    from incremental_analytics_local.product import LocalProduct, seed_for

__all__ = [
    "KINESIS_PARTITION_KEY_CHARACTERS",
    "KINESIS_RECORD_DATA_BYTES",
    "Background",
    "ExecutionResult",
    "Fault",
    "FaultError",
    "LocalAws",
    "LocalProduct",
    "execution_logs",
    "parse_fault",
    "seed_for",
]
