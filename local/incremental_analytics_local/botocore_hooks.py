"""Hooks into botocore that the embedded AWS uses: request counting and in-process services.

Every boto3 client in this process, ours and the ones moto's state-machine interpreter makes for Task states,
emits `before-parameter-build` and `before-call`. The hooks here see each call once, with its API parameters:
they count it, and a service registered here (a Lambda function run in-process, a fake of an API moto lacks)
answers it without any HTTP, exactly as botocore would have parsed the answer.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import botocore.handlers
from botocore.awsrequest import AWSResponse

PARAMS_KEY = "incremental_analytics_local.params"


class ServiceError(Exception):
    """An AWS error answer from an in-process service: botocore raises it as the ClientError AWS would."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


# An in-process service: (operation name, API parameters) -> the parsed response, or raise ServiceError;
# None leaves the call to moto.
Responder = Callable[[str, dict[str, Any]], dict[str, Any] | None]


@dataclass
class _Registry:
    responders: dict[str, Responder]
    counter: Counter[str]
    lock: threading.Lock
    answered_by_moto: Callable[[str], bool] = lambda url: True
    # Called with (service, operation, API parameters) for every counted request: measurements hook in here.
    observers: list[Callable[[str, str, dict[str, Any]], None]] = field(default_factory=list)
    # (service, operation) -> [calls left to fail, error code, HTTP status]
    faults: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    active: bool = False


_registry = _Registry(responders={}, counter=Counter(), lock=threading.Lock())
_internal = threading.local()


def _service_name(model: Any) -> str:
    return str(model.service_model.service_name)


def _remember_params(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    if _registry.active:
        context[PARAMS_KEY] = dict(params)


def _count_and_answer(
    model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any
) -> tuple[AWSResponse, dict[str, Any]] | None:
    if not _registry.active:
        return None
    service = _service_name(model)
    if not getattr(_internal, "depth", 0):
        with _registry.lock:
            _registry.counter[f"{service}.{model.name}"] += 1
        for observer in list(_registry.observers):
            observer(service, model.name, context.get(PARAMS_KEY, {}))
        fault = take_fault(service, model.name)
        if fault is not None:
            return _answer(functools.partial(_fail, *fault), model.name, {})
    responder = _registry.responders.get(service)
    if responder is None:
        if _registry.answered_by_moto(str(params.get("url", ""))):
            return None
        responder = functools.partial(_absent_service, service)
    return _answer(responder, model.name, context.get(PARAMS_KEY, {}))


def _fail(code: str, status: int, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    raise ServiceError(code, f"{operation}: injected fault", status)


def fail_next(service: str, operation: str, count: int, code: str, status: int = 400) -> None:
    """The next `count` calls of service.Operation answer the given AWS error, from any caller of the product's
    (the local engine's own calls, made `uncounted`, are not the product's and never fail)."""
    with _registry.lock:
        _registry.faults[(service, operation)] = [count, code, status]


def take_fault(service: str, operation: str) -> tuple[str, int] | None:
    """Use up one injected failure of service.Operation: its (error code, HTTP status), or None."""
    with _registry.lock:
        fault = _registry.faults.get((service, operation))
        if not fault or fault[0] <= 0:
            return None
        fault[0] -= 1
        return str(fault[1]), int(fault[2])


def _absent_service(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    raise ServiceError("UnknownOperationException", f"{service}.{operation}: not available in the local AWS")


def _answer(responder: Responder, operation: str, params: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]] | None:
    request_id = str(uuid.uuid4())
    try:
        answer = responder(operation, params)
        if answer is None:
            return None
        parsed, status = answer, 200
    except ServiceError as error:
        status = error.status
        parsed = {"Error": {"Code": error.code, "Message": error.message}, "message": error.message}
    parsed.setdefault(
        "ResponseMetadata", {"RequestId": request_id, "HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0}
    )
    return AWSResponse("https://local.invalid/", status, {"x-amzn-requestid": request_id}, None), parsed


def install() -> None:
    """Register the hooks with botocore, once per process: every session made afterwards has them."""
    handlers = botocore.handlers.BUILTIN_HANDLERS
    if ("before-call", _count_and_answer) not in handlers:
        handlers.append(("before-parameter-build", _remember_params))
        handlers.append(("before-call", _count_and_answer))


def activate(responders: Mapping[str, Responder], answered_by_moto: Callable[[str], bool]) -> None:
    """Answer these services in-process; let moto answer the URLs it knows; refuse the rest clearly."""
    _registry.responders = dict(responders)
    _registry.answered_by_moto = answered_by_moto
    _registry.counter.clear()
    _registry.active = True


def responder(service: str) -> Responder | None:
    """The in-process service answering `service` while the hooks are active."""
    return _registry.responders.get(service) if _registry.active else None


def deactivate() -> None:
    _registry.active = False
    _registry.responders = {}
    _registry.observers.clear()
    _registry.faults.clear()


def request_counts() -> dict[str, int]:
    with _registry.lock:
        return dict(sorted(_registry.counter.items()))


def observe(observer: Callable[[str, str, dict[str, Any]], None]) -> None:
    _registry.observers.append(observer)


def count(name: str) -> None:
    """Count a request the local engine makes on the product's behalf (an emulated StartSyncExecution)."""
    with _registry.lock:
        _registry.counter[name] += 1


def reset_counts() -> None:
    with _registry.lock:
        _registry.counter.clear()


@contextmanager
def uncounted() -> Iterator[None]:
    """Calls the local engine makes for itself (deploying, feeding the stream, polling) are not the product's."""
    _internal.depth = getattr(_internal, "depth", 0) + 1
    try:
        yield
    finally:
        _internal.depth -= 1
