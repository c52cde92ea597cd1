"""The embedded local AWS: moto in-process, state machines executed, our Lambda handlers run in-process,
fakes for the APIs moto lacks, and every request the product makes counted as `service.Operation`."""

from __future__ import annotations

import atexit
import gc
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from moto import mock_aws
from moto.backend_index import backend_url_patterns
from moto.server import ThreadedMotoServer

from incremental_analytics.adapters import retrying
from incremental_analytics.adapters.aws_clients import forget_clients
from incremental_analytics_local import botocore_hooks, glue
from incremental_analytics_local.botocore_hooks import uncounted
from incremental_analytics_local.fakes import FakeCustomerProfiles, FakePinpoint
from incremental_analytics_local.lambdas import LambdaRuntime

ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
_MOTO_CONFIG: Any = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
    "core": {"mock_credentials": True, "passthrough": {"urls": [], "services": []}, "reset_boto3_session": True},
}


# Python's cyclic garbage collector by default runs a young collection every 700 net new objects, and a full one
# (every object of the process: moto's tables, histories and models) every 100 young ones, once a quarter more
# objects have survived. The interpreter makes and drops containers at a great rate (each state's data is copied
# several times), so on 2,000 events of the cost benchmark the full collections alone took 17 s of a 45 s run;
# with these thresholds all collections took 2 s (and the process 5% more memory). Objects are freed by reference
# counting as before; only cycles wait longer for the collector.
GC_THRESHOLDS = (500_000, 20, 10)


def _no_collections_at_exit() -> None:
    """As the process exits, Python runs full collections over every object left (moto's tables and histories
    stay in its backends after an engine stops): 1.6 s at the end of a `run` of 2,000 events. Frozen objects are
    not collected; the process's memory goes back to the system whole. (Python calls no finaliser of an object
    left at exit in a reference cycle anyway: "It is not guaranteed that __del__() methods are called for objects
    that still exist when the interpreter exits", the data model's reference, object.__del__.)"""
    gc.freeze()


_exit_hook: list[bool] = []  # one entry once registered


class ExecutionTimeout(TimeoutError):
    pass


@dataclass(frozen=True)
class ExecutionResult:
    arn: str
    status: str  # SUCCEEDED | FAILED | TIMED_OUT | ABORTED
    output: Any
    error: str | None
    cause: str | None
    seconds: float


class LocalAws:
    """Start with `with LocalAws() as aws:`; everything made inside lives until the block ends."""

    def __init__(self, *, region: str = DEFAULT_REGION, time_scale: float = 1.0) -> None:
        self.region = region
        self.time_scale = time_scale
        self.lambdas = LambdaRuntime()
        self.pinpoint = FakePinpoint()
        self.profiles = FakeCustomerProfiles()
        self._mock: Any = None
        self._clients: dict[str, Any] = {}
        self._saved_environment: dict[str, str | None] = {}
        self._server: Any = None
        self._gc_thresholds: tuple[int, int, int] | None = None
        self.endpoint_url = ""

    # -- life cycle ----------------------------------------------------------------------------------------

    def start(self) -> LocalAws:
        variables = {
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "MOTO_ACCOUNT_ID": ACCOUNT_ID,
            # botocore 1.44 with moto's DynamoDB Streams needs this.
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        }
        self._saved_environment = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)
        self._gc_thresholds = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
        if not _exit_hook:
            atexit.register(_no_collections_at_exit)
            _exit_hook.append(True)
        glue.apply()
        glue.clear_client_cache()
        forget_clients()  # the product's own clients belong to the previous local AWS
        glue.time_scale.factor = self.time_scale
        # The functions' own backoff (adapters/retrying.py) passes at the same pace as Retry and Wait states.
        retrying.sleep = glue.time_scale.sleep
        botocore_hooks.install()
        self._mock = mock_aws(config=_MOTO_CONFIG)
        self._mock.start()
        botocore_hooks.activate(
            {"lambda": self.lambdas, "pinpoint": self.pinpoint, "customer-profiles": self.profiles},
            answered_by_moto=answered_by_moto,
        )
        return self

    def serve(self, port: int = 0) -> str:
        """Also answer on http://127.0.0.1:PORT (0: a free port), for the AWS CLI or boto3 in another process.

        Requests there reach the same resources, and an Invoke runs the function's handler in this process; the
        Pinpoint and Customer Profiles fakes answer only calls made inside this process (the product's own, and its
        state machines')."""
        if self._server is None:
            with socket.socket() as probe:  # a port in use fails here, not silently in the server's thread
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError as error:
                    raise OSError(f"cannot serve on 127.0.0.1:{port}: {error.strerror or error}") from None
                port = probe.getsockname()[1]
            logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request on the terminal
            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            self._server.start()
            self.endpoint_url = f"http://127.0.0.1:{port}"
        return self.endpoint_url

    def fail_event_entries_next(self, count: int, code: str = "InternalFailure") -> None:
        """The next `count` PutEvents entries are answered as failed (`ErrorCode`), the request succeeding."""
        glue.event_entry_faults.remaining, glue.event_entry_faults.code = count, code

    def stop(self) -> None:
        glue.event_entry_faults.remaining = 0
        if self._server is not None:
            self._server.stop()
            self._server = None
        botocore_hooks.deactivate()
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        glue.clear_client_cache()
        glue.time_scale.factor = 1.0
        retrying.sleep = time.sleep
        if self._gc_thresholds is not None:
            gc.set_threshold(*self._gc_thresholds)
            self._gc_thresholds = None
        self._clients.clear()
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- clients and counts --------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """A boto3 client on the local AWS (one per service, reused)."""
        if service not in self._clients:
            self._clients[service] = boto3.client(service, region_name=self.region)
        return self._clients[service]

    def request_counts(self) -> dict[str, int]:
        """Every request the product made since the last reset, as `service.Operation` -> count."""
        return botocore_hooks.request_counts()

    def reset_request_counts(self) -> None:
        botocore_hooks.reset_counts()

    def fail_next(self, service: str, operation: str, count: int, code: str, status: int = 400) -> None:
        """Make the next `count` calls of any service's operation fail with an AWS error (fault tests)."""
        botocore_hooks.fail_next(service, operation, count, code, status)

    @staticmethod
    @contextmanager
    def uncounted() -> Iterator[None]:
        with uncounted():
            yield

    # -- executions ----------------------------------------------------------------------------------------

    def start_sync_execution(
        self, state_machine_arn: str, payload: Any, *, name: str, deadline_seconds: float = 300
    ) -> ExecutionResult:
        """What `StartSyncExecution` does (moto lacks it): start, then poll with a deadline. Counted as one call;
        an injected fault answers as the throttled call would, without starting anything."""
        with uncounted():
            botocore_hooks.count("stepfunctions.StartSyncExecution")
            fault = botocore_hooks.take_fault("stepfunctions", "StartSyncExecution")
            if fault is not None:
                return ExecutionResult("", "FAILED", None, f"StepFunctions.{fault[0]}", "injected fault", 0.0)
            started = self.client("stepfunctions").start_execution(
                stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload)
            )
        return self.wait_for_execution(started["executionArn"], deadline_seconds=deadline_seconds)

    def wait_for_execution(self, execution_arn: str, *, deadline_seconds: float = 300) -> ExecutionResult:
        started = time.monotonic()
        deadline = started + deadline_seconds
        running = glue.execution_watch(ACCOUNT_ID, self.region, execution_arn)
        if not glue.wait_until_ended(running, max(0.0, deadline - time.monotonic())):
            raise ExecutionTimeout(f"{execution_arn} still running after {deadline_seconds} s")
        seconds = time.monotonic() - started
        described = self.describe(execution_arn)
        output = described.get("output")
        return ExecutionResult(
            arn=execution_arn,
            status=described["status"],
            output=None if output is None else json.loads(output),
            error=described.get("error"),
            cause=described.get("cause"),
            seconds=seconds,
        )

    def describe(self, execution_arn: str) -> dict[str, Any]:
        """What DescribeExecution says of any execution: read from the engine, since AWS (and so the local API)
        answers it for Standard executions only."""
        return glue.describe_execution(ACCOUNT_ID, self.region, execution_arn)

    def executions(self, state_machine_arn: str, status: str | None = None) -> list[str]:
        """The ARNs of a state machine's executions, newest first, Express ones too (ListExecutions refuses those)."""
        return glue.list_executions(ACCOUNT_ID, self.region, state_machine_arn, status)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """The execution's history events, oldest first (every page). For an Express execution AWS keeps them in
        CloudWatch Logs only (logging ALL with execution data); the local engine reads them from its backend."""
        return glue.execution_history(ACCOUNT_ID, self.region, execution_arn)

    def entered_states(self, execution_arn: str) -> list[str]:
        return [
            event["stateEnteredEventDetails"]["name"]
            for event in self.history(execution_arn)
            if "stateEnteredEventDetails" in event
        ]


def answered_by_moto(url: str) -> bool:
    """Whether moto has a backend for a request URL (what its own interception matches on)."""
    return any(pattern.match(url) for _, pattern in backend_url_patterns)
