"""Lambda functions run in-process: a registry from function name and ARN to our handler.

An invocation applies the function's environment, calls the handler with a Lambda-like context, and turns an
exception into Lambda's error envelope (`errorType` = the exception's class name), so that a state machine's
Retry and Catch match on it as they do on AWS. A synchronous invocation's request and response are bounded as on
AWS (aws_rules.LAMBDA_SYNC_PAYLOAD_BYTES).
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.response import StreamingBody

from incremental_analytics_local.aws_rules import LAMBDA_RESPONSE_TOO_LARGE, LAMBDA_SYNC_PAYLOAD_BYTES
from incremental_analytics_local.botocore_hooks import ServiceError

Handler = Callable[[Any, Any], Any]
LOG_LINES_KEPT = 5000


@dataclass(frozen=True)
class LocalFunction:
    name: str
    arn: str
    handler: str  # dotted path: package.module.function
    environment: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: int = 30
    memory_mb: int = 512


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    deadline_ms: int
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


class LambdaRuntime:
    """Answers lambda:Invoke for the registered functions; other Lambda calls go to moto."""

    def __init__(self) -> None:
        self._functions: dict[str, LocalFunction] = {}
        # Handlers share one process environment: invocations run one at a time, each with its own variables.
        self._lock = threading.RLock()
        self.invocations: dict[str, int] = {}
        self.logs: dict[str, list[str]] = {}
        # Called after an invocation returns, outside the runtime's lock, before the caller sees the result:
        # tests use it to interleave work deterministically (another execution committing in between).
        self.after_invoke: list[Callable[[LocalFunction, Any], None]] = []

    def register(self, function: LocalFunction) -> None:
        _resolve(function.handler)  # fail at deploy time, not at the first event
        self._functions[function.name] = function
        self._functions[function.arn] = function

    def functions(self) -> list[LocalFunction]:
        return sorted({f.name: f for f in self._functions.values()}.values(), key=lambda f: f.name)

    def find(self, name_or_arn: str) -> LocalFunction:
        key = name_or_arn.split(":$LATEST", maxsplit=1)[0]
        if key not in self._functions and key.startswith("arn:") and key.count(":") > 6:
            key = key.rsplit(":", 1)[0]  # a qualified ARN
        function = self._functions.get(key)
        if function is None:
            raise ServiceError("ResourceNotFoundException", f"Function not found: {name_or_arn}", 404)
        return function

    def __call__(self, operation: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if operation != "Invoke":
            return None
        function = self.find(str(params["FunctionName"]))
        payload = params.get("Payload") or b"{}"
        raw = payload.read() if hasattr(payload, "read") else payload
        if len(raw.encode() if isinstance(raw, str) else raw) > LAMBDA_SYNC_PAYLOAD_BYTES:
            raise ServiceError(
                "RequestEntityTooLargeException",
                f"Request must be smaller than {LAMBDA_SYNC_PAYLOAD_BYTES} bytes for the InvokeFunction operation",
                413,
            )
        event = json.loads(raw)
        result, error = self.invoke(function, event)
        for hook in list(self.after_invoke):
            hook(function, event)
        body = json.dumps(error if error is not None else result).encode()
        if error is None and len(body) > LAMBDA_SYNC_PAYLOAD_BYTES:
            error = {
                "errorType": LAMBDA_RESPONSE_TOO_LARGE,
                "errorMessage": f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload size "
                f"({LAMBDA_SYNC_PAYLOAD_BYTES} bytes).",
            }
            body = json.dumps(error).encode()
        response: dict[str, Any] = {
            "StatusCode": 202 if params.get("InvocationType") == "Event" else 200,
            "ExecutedVersion": "$LATEST",
            "Payload": StreamingBody(io.BytesIO(body), len(body)),
        }
        if error is not None:
            response["FunctionError"] = "Unhandled"
        return response

    def invoke(self, function: LocalFunction, event: Any) -> tuple[Any, dict[str, Any] | None]:
        """Run the handler; (result, None) or (None, Lambda's error envelope)."""
        handler = _resolve(function.handler)
        request_id = str(uuid.uuid4())
        context = LambdaContext(
            function_name=function.name,
            invoked_function_arn=function.arn,
            memory_limit_in_mb=function.memory_mb,
            aws_request_id=request_id,
            deadline_ms=int(time.time() * 1000) + function.timeout_seconds * 1000,
            log_group_name=f"/aws/lambda/{function.name}",
        )
        output = io.StringIO()
        with self._lock, _environment(function), _captured(output):
            _logs_follow_the_invocation(function.environment)
            self.invocations[function.name] = self.invocations.get(function.name, 0) + 1
            try:
                return handler(event, context), None
            except Exception as error:  # every handler error becomes Lambda's envelope, as on AWS
                return None, {
                    "errorType": type(error).__name__,
                    "errorMessage": str(error),
                    "requestId": request_id,
                    "stackTrace": traceback.format_tb(error.__traceback__),
                }
            finally:
                self._keep_log(function.name, request_id, output.getvalue())

    def _keep_log(self, function_name: str, request_id: str, text: str) -> None:
        """What the invocation printed (Powertools' metrics, for one), kept as its CloudWatch log would be."""
        lines = self.logs.setdefault(function_name, [])
        lines.append(f"START RequestId: {request_id}")
        lines.extend(line for line in text.splitlines() if line)
        lines.append(f"END RequestId: {request_id}")
        del lines[: max(0, len(lines) - LOG_LINES_KEPT)]


def _resolve(dotted: str) -> Handler:
    module_name, _, attribute = dotted.rpartition(".")
    if not module_name:
        raise ValueError(f"handler {dotted!r} is not module.function")
    handler: Handler = getattr(importlib.import_module(module_name), attribute)
    return handler


_capture = threading.local()


class _ThreadOutput(io.TextIOBase):
    """stdout or stderr that the invocation running on this thread captures, and every other thread keeps: a
    process-wide redirect would also swallow what the rest of the process prints (a traceback, a progress bar)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def write(self, text: str) -> int:
        target = getattr(_capture, "buffer", None)
        written: int = (target if target is not None else self.real).write(text)
        return written

    def flush(self) -> None:
        self.real.flush()


@contextmanager
def _captured(buffer: io.StringIO) -> Iterator[None]:
    if not isinstance(sys.stdout, _ThreadOutput):
        sys.stdout = _ThreadOutput(sys.stdout)
    if not isinstance(sys.stderr, _ThreadOutput):
        sys.stderr = _ThreadOutput(sys.stderr)
    _capture.buffer = buffer
    try:
        yield
    finally:
        _capture.buffer = None


class _InvocationOutput(io.TextIOBase):
    """Whatever stdout is now: the output of the invocation running, kept as its log."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def _logs_follow_the_invocation(environment: Mapping[str, str]) -> None:
    """Powertools' Logger binds the process's stdout and reads its level once, at import; on Lambda each function
    is its own process. Here the function's log level applies, and its lines go to its log, not the terminal."""
    service = environment.get("POWERTOOLS_SERVICE_NAME")
    if not service:
        return
    python_logger = logging.getLogger(service)
    for handler in python_logger.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler.stream, _InvocationOutput):
            handler.setStream(_InvocationOutput())
    python_logger.setLevel(environment.get("POWERTOOLS_LOG_LEVEL", "INFO").upper())


@contextmanager
def _environment(function: LocalFunction) -> Iterator[None]:
    variables = {
        # No X-Ray daemon here: Powertools' Tracer stays off locally.
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        **function.environment,
    }
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
