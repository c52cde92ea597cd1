"""`incremental-analytics serve`: the product deployed into an embedded local AWS that answers over HTTP, until
stopped.

The stack is registered in the local CloudFormation (`describe-stacks` gives its outputs), so every `--stack`
command and the AWS CLI or boto3 pointed at the endpoint (`--endpoint-url`, or `AWS_ENDPOINT_URL`) work against
it. Its Pipes (the stream to IngestBatch, the rules table's stream to RulesChanged, and any other the template
declares) poll their sources and its schedules fire in the background; a rules file put under `rules/` in the
data bucket starts SyncRules through S3's EventBridge notification, as on AWS. The Express workflows log at ALL
with execution data, so `trace --stack` draws any execution.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from incremental_analytics.domain.rules_loading import load_rules_file
from incremental_analytics_local import Background, LocalAws, LocalProduct

STACK_NAME = "incremental-analytics"
DEFAULT_PORT = 4566
# Everything a trace needs in the Express workflows' logs; the functions' own logs kept to warnings.
SERVE_PARAMETERS = {"ExpressLogLevel": "ALL", "IncludeExecutionData": "true", "FunctionLogLevel": "WARNING"}


@dataclass
class Served:
    aws: LocalAws
    product: LocalProduct
    background: Background
    endpoint: str

    @property
    def stack_name(self) -> str:
        return self.product.stack.name


@contextmanager
def serving(
    *,
    port: int = DEFAULT_PORT,
    stack_name: str = STACK_NAME,
    time_scale: float = 1.0,
    poll_seconds: float = 0.2,
    report: Callable[[str], None] = lambda line: None,
) -> Iterator[Served]:
    """The local AWS on http://127.0.0.1:PORT (0: a free port) with the stack deployed and its Pipes and schedules
    running, until the block ends."""
    with LocalAws(time_scale=time_scale) as aws:
        endpoint = aws.serve(port)
        product = LocalProduct(aws, stack_name=stack_name, parameters=SERVE_PARAMETERS)
        background = Background(
            aws, product.stack.pipes, product.stack.schedules, poll_seconds=poll_seconds, report=report
        ).start()
        try:
            yield Served(aws, product, background, endpoint)
        finally:
            background.stop()


def load_rules(served: Served, path: Path) -> str:
    """Upload a rules file as `rules push --stack` does (checked first: nothing is uploaded when it has a problem),
    and say what SyncRules did; RulesChanged follows through the rules table's Pipe."""
    content = path.read_bytes()
    load_rules_file(path.name, content)  # RulesError lists every problem
    synced = served.product.upload_rules_file(path.name, content)
    if synced.status != "SUCCEEDED":
        return f"SyncRules {synced.status.lower()}: {synced.error}"
    summary = (synced.output or {}).get("summary", {})
    return (
        f"{path}: SyncRules {len(summary.get('created', []))} created, {len(summary.get('changed', []))} changed, "
        f"{len(summary.get('deleted', []))} deleted, {summary.get('unchanged', 0)} unchanged; RulesChanged follows"
    )


def banner(served: Served, command: str) -> str:
    """What the terminal shows once the stack is up: where it is, how to point tools at it, what runs."""
    stack = served.product.stack
    outputs = "\n".join(f"  {key:<32}{value}" for key, value in stack.outputs.items())
    environment = (
        f"export AWS_ENDPOINT_URL={served.endpoint} AWS_DEFAULT_REGION={served.aws.region} "
        "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing"
    )
    now = dt.datetime.now(dt.UTC)
    schedules = ", ".join(
        f"{logical_id} ({stack.schedules[logical_id].expression}, next {due:%H:%M:%S} UTC)"
        if due
        else f"{logical_id} (no more runs)"
        for logical_id, due in served.background.due.items()
    )
    return "\n".join(
        [
            f"Stack {served.stack_name} is served on {served.endpoint} (region {served.aws.region}), "
            f"deployed {now:%H:%M:%S} UTC. Ctrl-C stops it; nothing is kept.",
            "",
            "Point the AWS CLI, boto3 and this command at it:",
            f"  {environment}",
            f"  aws cloudformation describe-stacks --stack-name {served.stack_name}",
            f"  {command} rules push rules.csv --stack {served.stack_name}",
            "",
            "Outputs:",
            outputs,
            "",
            f"Running: pipes {', '.join(stack.pipes) or 'none'}; schedules {schedules or 'none'}; "
            "S3 notifications of the data bucket.",
        ]
    )
