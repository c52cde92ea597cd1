"""Small patches to moto's Step Functions interpreter, each for one gap measured in moto 5.2.5.

Every patch here has a canary test in tests/functional/test_local_glue.py that fails if a moto upgrade changes
what it relies on. The moto pin in pyproject.toml is exact for that reason.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
import importlib
import json
import logging
import marshal
import pickle
import re
import sys
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import botocore.session
import jsonpath_ng
import jsonpath_ng.ext
import moto
from botocore.exceptions import ClientError
from jsonpath_ng.ext import parse as jsonpath_parse  # type: ignore[attr-defined]
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.botocore_stubber import BotocoreStubber
from moto.core.exceptions import AWSError
from moto.core.serialize import DEFAULT_ALIAS_PROVIDERS, BaseJSONSerializer, XFormedAttributePicker
from moto.core.utils import camelcase_to_underscores
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import StreamShard, Table
from moto.dynamodb.responses import DynamoHandler
from moto.events.models import EventsBackend
from moto.events.models import Rule as EventsRule
from moto.kinesis.models import KinesisBackend
from moto.kinesis.models import Shard as KinesisShard
from moto.sqs.models import Queue as SqsQueue
from moto.sqs.models import SQSBackend, sqs_backends
from moto.stepfunctions.parser.api import (
    HistoryEventExecutionDataDetails,
    HistoryEventType,
    StateEnteredEventDetails,
    StateExitedEventDetails,
    TaskFailedEventDetails,
)
from moto.stepfunctions.parser.asl.component.common import parargs
from moto.stepfunctions.parser.asl.component.common.error_name import error_equals_decl
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.common.path import result_path as result_path_module
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.intrinsic.function.statesfunction.generic.string_format import (
    StringFormat,
)
from moto.stepfunctions.parser.asl.component.state import state as moto_state
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_lambda
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service,
    state_task_service_aws_sdk,
    state_task_service_callback,
    state_task_service_dynamodb,
    state_task_service_events,
    state_task_service_lambda,
    state_task_service_sfn,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.eval.event.logging import CloudWatchLoggingConfiguration, CloudWatchLoggingSession
from moto.stepfunctions.parser.asl.eval.program_state import ProgramRunning
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils import boto_client as moto_boto_client
from moto.stepfunctions.parser.asl.utils import json_path as moto_json_path
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication
from moto.stepfunctions.parser.backend.execution import Execution as ParserExecution
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.models import StepFunctionsParserBackend, stepfunctions_parser_backends
from moto.stepfunctions.responses import StepFunctionResponse

from incremental_analytics_local import (
    aws_rules,
    botocore_hooks,
    dynamodb_partiql,
    dynamodb_transactions,
    execution_logs,
)

MOTO_VERSION = "5.2.5"

# moto's expression parsing modules, untyped (ast_nodes and expressions are marked `type: ignore` whole).
_ast_nodes: Any = importlib.import_module("moto.dynamodb.parsing.ast_nodes")
_expressions: Any = importlib.import_module("moto.dynamodb.parsing.expressions")
_validators: Any = importlib.import_module("moto.dynamodb.parsing.validators")


class TimeScale:
    """How much of a Retry backoff or Wait really passes: 1.0 is real time, 0.001 a thousandth of it."""

    def __init__(self) -> None:
        self.factor = 1.0

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds * self.factor))


time_scale = TimeScale()
_dynamodb_lock = threading.RLock()
_applied: list[bool] = []  # one entry once the patches are in


def apply() -> None:
    """Apply every patch, once per process. Refuses to run on a moto other than the one they were written for."""
    if _applied:
        return
    # A failed state is shown in the execution's history; moto also logs each one at length.
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(f"the local engine's patches are for moto {MOTO_VERSION}, found {moto.__version__}")
    _cache_task_clients()
    _name_unnamed_executions()
    _scale_retry_and_wait()
    _serialise_dynamodb()
    _map_more_sdk_services()
    _sfn_parameter_casing()
    _one_insert_per_creating_update()
    _transactions_without_table_copies()
    _partiql_writes_as_dynamodb_runs_them()
    _parse_each_definition_once()
    _format_escapes()
    _definite_json_paths()
    _json_ready_sdk_responses()
    _start_time_as_text()
    _faster_copies_and_paths()
    _history_details_without_copies()
    _running_states_copied_directly()
    _attribute_values_serialised_directly()
    _attribute_names_tried_once_per_shape()
    _executions_tell_when_they_end()
    _prompt_sync_child_executions()
    _state_machine_targets_of_event_rules()
    _queries_read_their_partition()
    _entered_time_as_aws_writes_it()
    _payload_limits()
    _kinesis_record_limit()
    _kinesis_sequence_ends_read_directly()
    _sent_messages_read_one_queue_attribute()
    _result_and_event_paths_parsed_once()
    _update_expressions_parsed_once()
    _expression_trees_walked_without_repeated_type_checks()
    _terminal_errors_escape_states_all()
    _error_names_as_each_integration_raises_them()
    _no_history_api_for_express_executions()
    _execution_logs_in_cloudwatch()
    _logging_configuration_checked()
    _http_invokes_run_the_handler()
    _event_entries_can_fail()
    _applied.append(True)


@dataclass
class _EntryFaults:
    remaining: int = 0
    code: str = "InternalFailure"


# The next PutEvents entries EventBridge answers as failed, whatever request carries them (LocalAws sets it).
event_entry_faults = _EntryFaults()


def _event_entries_can_fail() -> None:
    """EventBridge's PutEvents answers entry by entry: the request succeeds while an entry fails with an
    `ErrorCode` (EventBridge API reference, PutEventsResultEntry: `InternalFailure` and `ThrottlingException` are
    the retryable ones) and is not put on the bus. moto never fails an entry it finds valid; this lets a test make
    the next entries fail as AWS's would, the other entries of the request going through."""
    original = EventsBackend.put_events

    @functools.wraps(original)
    def put_events(self: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(events) > 10 or event_entry_faults.remaining <= 0:  # moto refuses more than 10 entries itself
            return original(self, events)
        failing = min(event_entry_faults.remaining, len(events))
        event_entry_faults.remaining -= failing
        failed = [{"ErrorCode": event_entry_faults.code, "ErrorMessage": "injected entry failure"}] * failing
        return failed + (original(self, events[failing:]) if events[failing:] else [])

    EventsBackend.put_events = put_events  # type: ignore[method-assign]


def _entered_time_as_aws_writes_it() -> None:
    """`$$.State.EnteredTime` is UTC with milliseconds and a Z on AWS (2019-03-26T20:14:13.192Z); moto writes
    Python's isoformat (microseconds, +00:00). Instants the workflows store are compared as text: write AWS's."""
    original = getattr(moto_state, "StateData")  # noqa: B009 - not re-exported by moto

    def state_data(**fields: Any) -> Any:
        entered = fields.get("EnteredTime")
        if isinstance(entered, str):
            moment = dt.datetime.fromisoformat(entered).astimezone(dt.UTC)
            fields["EnteredTime"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return original(**fields)

    setattr(moto_state, "StateData", state_data)  # noqa: B010


SYNC_CHECK_SECONDS = 0.02


def _prompt_sync_child_executions() -> None:
    """`startExecution.sync` checks its child every 0.5 s, real time; a child takes tens of ms here."""
    state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK = SYNC_CHECK_SECONDS  # type: ignore[misc]


_query_scope = threading.local()


def _queries_read_their_partition() -> None:
    """moto's Query sorts every item of the table to find one partition's (an index query sorts them too, then
    sorts its matches again): a query on a 60,000-item table took a second. Read the partition alone; give an
    index query the items unsorted (it sorts what it keeps)."""
    original_query = Table.query
    original_all_items = Table.all_items

    @functools.wraps(original_query)
    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        _query_scope.of = (self, None if index_name else hash_key)
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            _query_scope.of = None

    @functools.wraps(original_all_items)
    def all_items(self: Any) -> Any:
        scope = getattr(_query_scope, "of", None)
        if scope is None or scope[0] is not self:
            return original_all_items(self)
        if not self.range_key_attr:  # one item per partition
            found = self.items.get(scope[1]) if scope[1] is not None else None
            return list(self.items.values()) if scope[1] is None else [found] if found is not None else []
        if scope[1] is None:  # an index query
            return [item for hash_set in self.items.values() for item in hash_set.values()]
        partition = self.items.get(scope[1]) or {}
        return sorted(partition.values(), key=lambda item: item.range_key)

    Table.query = query  # type: ignore[method-assign]
    Table.all_items = all_items  # type: ignore[method-assign]


_rule_targets_lock = threading.Lock()


def _state_machine_targets_of_event_rules() -> None:
    """moto's EventBridge rules deliver to queues, logs and buses only: a Step Functions target raises
    NotImplementedError (and S3's notifications swallow it). Start the execution, with the event as input
    (or the target's constant `Input`), as EventBridge does; other targets go the original way."""
    original = EventsRule.send_to_targets

    @functools.wraps(original)
    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        machines = [target for target in self.targets if ":states:" in str(target["Arn"])]
        others = [target for target in self.targets if target not in machines]
        if machines and self.event_pattern.matches_event(original_event):
            event = dict(original_event)
            if isinstance(event.get("time"), int | float):
                event["time"] = dt.datetime.fromtimestamp(event["time"], dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            backend = stepfunctions_parser_backends[self.account_id][self.region_name]
            for target in machines:
                text = target.get("Input") or json.dumps(event)
                backend.start_execution(target["Arn"], str(uuid.uuid4()), text)
        if others:
            with _rule_targets_lock:
                kept, self.targets = self.targets, others
                try:
                    original(self, original_event, transform_input)
                finally:
                    self.targets = kept

    EventsRule.send_to_targets = send_to_targets  # type: ignore[method-assign]


def _cache_task_clients() -> None:
    """moto builds a boto3 client for every Task it runs (tens of ms each): build one per (region, service)."""
    original: Callable[..., Any] = moto_boto_client.boto_client_for

    @functools.cache
    def cached(region: str, service: str) -> Any:
        return original(region=region, service=service)

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        return cached(region, service)

    boto_client_for.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = boto_client_for  # type: ignore[attr-defined]


def clear_client_cache() -> None:
    """Clients are bound to one mock session: a new engine starts with none."""
    cache_clear = getattr(getattr(state_task_service_aws_sdk, "boto_client_for", None), "cache_clear", None)
    if cache_clear is not None:
        cache_clear()


def _name_unnamed_executions() -> None:
    """An execution started without a name gets an ARN ending in `:None`, so a second one collides."""
    original = StepFunctionsParserBackend.start_execution

    @functools.wraps(original)
    def start_execution(self: Any, state_machine_arn: str, name: Any = None, *args: Any, **kwargs: Any) -> Any:
        return original(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]


def _scale_retry_and_wait() -> None:
    """Retry backoff and Wait states really sleep; the engine scales them (tests use a tiny factor)."""
    setattr(retrier_decl, "time", types.SimpleNamespace(sleep=time_scale.sleep))  # noqa: B010

    def _wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        if wait_seconds > 0:
            env.program_state_event.wait(wait_seconds * time_scale.factor)

    WaitFunction._wait_interval = _wait_interval  # type: ignore[method-assign]


def _serialise_dynamodb() -> None:
    """Concurrent Map iterations writing one item lose updates in moto's in-memory DynamoDB: one at a time, whether
    the request comes from this process or over HTTP."""
    original = BotocoreStubber.process_request

    @functools.wraps(original)
    def process_request(self: Any, request: Any) -> Any:
        if "dynamodb" in request.url.split("/")[2]:
            with _dynamodb_lock:
                return original(self, request)
        return original(self, request)

    BotocoreStubber.process_request = process_request  # type: ignore[method-assign]

    # Requests over HTTP (`serve`) reach the same tables through moto's server: the same one-at-a-time.
    original_call = DynamoHandler.call_action

    @functools.wraps(original_call)
    def call_action(self: Any) -> Any:
        with _dynamodb_lock:
            return original_call(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def _map_more_sdk_services() -> None:
    """`aws-sdk:customerprofiles:*` and `aws-sdk:eventbridge:*` name the services as Step Functions does; boto3
    calls them customer-profiles and events.
    (The error names of every integration are set by _error_names_as_each_integration_raises_them.)"""
    overrides: dict[str, str] = state_task_service.StateTaskService._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES
    renamed = ("customerprofiles", "eventbridge")
    overrides.update({sfn: boto for sfn, boto in aws_rules.SDK_TO_BOTOCORE.items() if sfn in renamed})


@functools.cache
def _input_members(service: str, operation: str) -> dict[str, str]:
    """lower-cased member name -> the member name of botocore's model for this operation's input."""
    model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    return {name.lower(): name for name in model.input_shape.members} if model.input_shape else {}


def _sfn_parameter_casing() -> None:
    """Step Functions' own API has camelCase members (stateMachineArn); ASL passes StateMachineArn, which moto
    hands to boto3 unchanged (moto issue 10076). Rename top-level keys to the model's members."""
    for cls in (state_task_service_sfn.StateTaskServiceSfn, state_task_service_aws_sdk.StateTaskServiceAwsSdk):
        original = cls._normalise_parameters

        def _normalise_parameters(
            self: Any,
            parameters: dict[str, Any],
            boto_service_name: str | None = None,
            service_action_name: str | None = None,
            _original: Any = original,
        ) -> None:
            _original(self, parameters, boto_service_name, service_action_name)
            if self._get_boto_service_name(boto_service_name) != "stepfunctions":
                return
            action = service_action_name or self.resource.api_action
            members = _input_members("stepfunctions", action[:1].upper() + action[1:])
            for key in list(parameters):
                target = members.get(key.lower())
                if target is not None and target != key:
                    parameters[target] = parameters.pop(key)

        cls._normalise_parameters = _normalise_parameters  # type: ignore[method-assign]

    def _normalise_response(
        self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        """Step Functions answers its integration with PascalCase keys and timestamps as text, not datetimes."""
        if isinstance(response, dict):
            for key in list(response):
                value = response.pop(key)
                response[key[:1].upper() + key[1:]] = value.isoformat() if isinstance(value, dt.datetime) else value

    state_task_service_sfn.StateTaskServiceSfn._normalise_response = _normalise_response  # type: ignore[method-assign]


_updating = threading.local()


def _one_insert_per_creating_update() -> None:
    """An UpdateItem that creates its item puts the bare key first: moto's stream shows two INSERT records
    (the key alone, then the item) where DynamoDB shows one. Drop the first."""
    original_update = DynamoDBBackend.update_item
    original_add = StreamShard.add

    @functools.wraps(original_update)
    def update_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        _updating.skip_bare_insert = True
        try:
            return original_update(self, *args, **kwargs)
        finally:
            _updating.skip_bare_insert = False

    @functools.wraps(original_add)
    def add(self: Any, old: Any, new: Any) -> None:
        if old is None and getattr(_updating, "skip_bare_insert", False):
            _updating.skip_bare_insert = False
            return
        original_add(self, old, new)

    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]
    StreamShard.add = add  # type: ignore[method-assign]


def execution_watch(account_id: str, region: str, execution_arn: str) -> Callable[[], bool]:
    """A cheap "still running?" for one execution, read from moto's backend object: polling through the API
    costs a request's serialisation (about 10 ms) each time and competes with the execution for the
    interpreter; finding the execution walks every execution of its state machine, so it is done once."""
    execution = stepfunctions_parser_backends[account_id][region].describe_execution(execution_arn)

    def running() -> bool:
        status = getattr(execution, "exec_status", None)
        return status is None or execution.status == "RUNNING"

    return running


_ended = threading.Condition()
ENDED_CHECK_SECONDS = 0.05


def _executions_tell_when_they_end() -> None:
    """An execution's end wakes whoever waits for one (wait_until_ended), instead of them polling its status."""
    original = BaseExecutionWorkerCommunication.terminated

    @functools.wraps(original)
    def terminated(self: Any) -> None:
        try:
            original(self)
        finally:
            with _ended:
                _ended.notify_all()

    BaseExecutionWorkerCommunication.terminated = terminated  # type: ignore[method-assign]


def wait_until_ended(running: Callable[[], bool], timeout_seconds: float) -> bool:
    """Wait until `running()` is false (an execution_watch): woken when any execution ends, and looking again every
    ENDED_CHECK_SECONDS whatever happens. False when the timeout passed first."""
    deadline = time.monotonic() + timeout_seconds
    with _ended:
        while running():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            _ended.wait(min(left, ENDED_CHECK_SECONDS))
    return True


def take_visible_messages(account_id: str, region: str, queue_name: str) -> list[str]:
    """The bodies of a queue's visible messages, in the order ReceiveMessage gives them, taken off the queue: what
    receiving and deleting them all through the API does, in one pass. moto's SQS looks at every message of the
    queue for each ReceiveMessage (their visibility) and each DeleteMessage, so emptying a queue of n messages
    ten at a time took time in n squared. For the local harness, which reads what a subscriber would."""
    queue = sqs_backends[account_id][region].get_queue(queue_name)
    with queue._messages_lock:
        taken = queue.messages
        gone = {id(message) for message in taken}
        queue._messages = [message for message in queue._messages if id(message) not in gone]
    return [str(message.body) for message in taken]


_sending = threading.local()
_original_queue_attributes: Any = SqsQueue.attributes  # the property, as moto defines it


class _QueueAttributes(Mapping[str, Any]):
    """A queue's attributes as moto's `Queue.attributes` gives them, each worked out when it is read: the same
    names and values (canary in test_local_glue), without counting the queue's messages for every read."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def _names(self) -> list[str]:
        queue = self._queue
        names = list(queue.BASE_ATTRIBUTES)  # Policy and RedrivePolicy among them
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        return names

    def __getitem__(self, name: str) -> Any:
        queue = self._queue
        if name not in self._names():
            raise KeyError(name)
        if name == "Policy" and queue.policy:
            value = queue.policy
        elif name == "RedrivePolicy" and queue.redrive_policy:
            value = json.dumps(queue.redrive_policy)
        else:
            value = getattr(queue, camelcase_to_underscores(name))
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


def _sent_messages_read_one_queue_attribute() -> None:
    """SendMessage reads one attribute of its queue (ContentBasedDeduplication) through `Queue.attributes`, which
    works out all of them, the three message counts among them: each a look at every message of the queue (and
    at the clock for each). EventBridge putting n events on a queue took time in n squared (a tenth of a `run`
    of 10,000 events). While a message is sent, a queue's attributes are worked out one by one, as read."""
    original_send = SQSBackend.send_message

    @functools.wraps(original_send)
    def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        depth = getattr(_sending, "depth", 0)
        _sending.depth = depth + 1
        try:
            return original_send(self, *args, **kwargs)
        finally:
            _sending.depth = depth

    def attributes(self: Any) -> Any:
        if getattr(_sending, "depth", 0):
            return _QueueAttributes(self)
        return _original_queue_attributes.fget(self)

    SQSBackend.send_message = send_message  # type: ignore[method-assign]
    SqsQueue.attributes = property(attributes)  # type: ignore[method-assign,assignment]


def execution_history(account_id: str, region: str, execution_arn: str) -> list[dict[str, Any]]:
    """The execution's history events as GetExecutionHistory gives them (every page), read from moto's backend:
    through the API, serialising and parsing a long history cost a quarter of the demo's time."""
    events = stepfunctions_parser_backends[account_id][region].get_execution_history(execution_arn)["events"]
    return [
        {
            **event,
            "type": str(getattr(event["type"], "value", event["type"])),
            "timestamp": dt.datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")),
        }
        for event in list(events)
    ]


PARSED_EXPRESSIONS_KEPT = 1024
_parsed_expressions: dict[tuple[type, str], Any] = {}  # (parser, UpdateExpression) -> its tree
_tree_pickles: dict[int, tuple[Any, bytes]] = {}  # id of a kept tree -> (the tree, its pickle)


def _tree_copy(value: Any, memo: Any = None) -> Any:
    """copy.deepcopy, but for a kept tree: read back from its pickle (a fifth of the time; the same copy, as
    moto's nodes are plain objects that pickle keeps by their state, as deepcopy copies them)."""
    found = _tree_pickles.get(id(value))
    if found is not None and found[0] is value:
        return pickle.loads(found[1])
    return copy.deepcopy(value, memo)


def _update_expressions_parsed_once() -> None:
    """moto tokenises and parses an UpdateExpression for every UpdateItem (twice through the API: the handler
    reads the names and values it uses, the backend validates), and the validator deep-copies the tree to work
    on: the product's counter statements are a handful of expressions written thousands of times. The tree is
    only read (the validator changes its copy; the handlers look for clauses): parse each expression once, and
    copy its tree from a pickle of it. DynamoDB requests run one at a time (_serialise_dynamodb)."""
    parser = _expressions.UpdateExpressionParser
    original = parser.make.__func__
    if getattr(_validators, "deepcopy", None) is not copy.deepcopy:
        raise RuntimeError("moto's expression validator no longer uses copy.deepcopy: revisit the local engine's glue")

    def make(cls: Any, expression_str: str) -> Any:
        tree = _parsed_expressions.get((cls, expression_str))
        if tree is None:
            tree = original(cls, expression_str)  # an invalid expression raises here, each time
            if len(_parsed_expressions) >= PARSED_EXPRESSIONS_KEPT:
                _parsed_expressions.clear()
                _tree_pickles.clear()
            _parsed_expressions[(cls, expression_str)] = tree
            _tree_pickles[id(tree)] = (tree, pickle.dumps(tree))
        return tree

    parser.make = classmethod(make)
    _validators.deepcopy = _tree_copy


_node_types: dict[type, bool] = {}
# (the node classes a processor handles, a node's class) -> the first of them the node is an instance of, or None
_processed_as: dict[tuple[tuple[type, ...], type], type | None] = {}


def _is_node(kind: type) -> bool:
    found = _node_types.get(kind)
    if found is None:
        found = _node_types[kind] = issubclass(kind, _ast_nodes.Node)
    return found


def _processing_class(targets: tuple[type, ...], kind: type) -> type | None:
    key = (targets, kind)
    if key not in _processed_as:
        _processed_as[key] = next((target for target in targets if issubclass(kind, target)), None)
    return _processed_as[key]


def _walk(processor: Any, targets: tuple[type, ...], node: Any, child_id: int = -1) -> Any:
    """moto's DepthFirstTraverser.traverse_node_recursively, its class tests looked up once per node class (moto's
    nodes are ABCs: each isinstance goes through ABCMeta, tens of them per node and per processor)."""
    if not _is_node(type(node)):
        return node
    parent_node = node.parent
    if node.children is not None:
        for i, child_node in enumerate(node.children):
            processor.pre_processing_of_child(node, i)
            _walk(processor, targets, child_node, i)
    target = _processing_class(targets, type(node))
    if target is not None:
        node = processor._processing_map()[target](node)
        node.parent = parent_node
        if parent_node:
            parent_node.children[child_id] = node
    return node


def _expression_trees_walked_without_repeated_type_checks() -> None:
    """Validating an UpdateExpression walks its tree once per processor (ten of them), and each node visited asks
    ABCMeta several isinstance questions: half the validation's time. Walk the same way with each (node class,
    processor's classes) answered once. The processors' own work is moto's, unchanged."""

    def traverse(self: Any, node: Any) -> Any:
        return _walk(self, tuple(self.nodes_to_be_processed()), node)

    _ast_nodes.DepthFirstTraverser.traverse = traverse


# moto's own, for the canaries that compare answers with and without the patches above.
_original_update_expression_make = _expressions.UpdateExpressionParser.make
_original_traverse = _ast_nodes.DepthFirstTraverser.traverse


def _transactions_without_table_copies() -> None:
    """TransactWriteItems copies every table it touches, whole: use an undo log of the touched items."""
    original = DynamoDBBackend.transact_write_items
    replacement = functools.wraps(original)(dynamodb_transactions.transact_write_items)
    DynamoDBBackend.transact_write_items = replacement  # type: ignore[method-assign]


def _partiql_writes_as_dynamodb_runs_them() -> None:
    """BatchExecuteStatement: the product's PartiQL writes as conditional writes, strictly (dynamodb_partiql.py)."""
    original = DynamoDBBackend.batch_execute_statement
    replacement = functools.wraps(original)(dynamodb_partiql.batch_execute_statement)
    DynamoDBBackend.batch_execute_statement = replacement  # type: ignore[method-assign]


def _parse_each_definition_once() -> None:
    """Every execution re-parses its definition with ANTLR (about a third of a short execution's time).
    The parsed program keeps per-run state in the execution's environment, not in itself: reuse it."""
    original = AmazonStateLanguageParser.parse
    AmazonStateLanguageParser.parse = staticmethod(functools.lru_cache(maxsize=256)(original))  # type: ignore[method-assign]


def _python_format(template: str) -> str:
    """An ASL States.Format template as a Python format string: `\\{` and `\\}` are literal braces in ASL.

    moto hands over the literal as it stands in the definition's JSON text, its backslashes still doubled.
    """
    template = template.replace("\\\\", "\\")
    out: list[str] = []
    index = 0
    while index < len(template):
        char = template[index]
        if char == "\\" and index + 1 < len(template):
            escaped = template[index + 1]
            out.append({"{": "{{", "}": "}}"}.get(escaped, escaped))
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _format_escapes() -> None:
    """States.Format's escapes (`\\{`, `\\}`, `\\'`, `\\\\`) reach Python's str.format unchanged in moto, which
    then fails on the brace. Turn them into str.format's own escapes first."""
    original = StringFormat._eval_body

    @functools.wraps(original)
    def _eval_body(self: Any, env: Any) -> None:
        self.argument_list.eval(env=env)
        args = env.stack.pop()
        values = map(self._to_str_repr, args[1:])
        env.stack.append(_python_format(str(args[0])).format(*values))

    StringFormat._eval_body = _eval_body  # type: ignore[method-assign]


_INDEFINITE = re.compile(r"\[\*\]|\.\*|\[-?\d*:-?\d*(:-?\d*)?\]|\[\?|\.\.|\[[^\]]*,")


@functools.lru_cache(maxsize=4096)
def _parsed_path(path: str) -> Any:
    return jsonpath_parse(path)


def extract_json(path: str, data: Any) -> Any:
    """JSONPath as Step Functions reads it: a definite path (no `[*]` or `.*` wildcard, slice, filter, `..` or
    union) gives one value; an indefinite one gives a list, empty when nothing matches. moto 5.2.5 returns a list
    for any path through an array index, such as `$.items[0].id` (its workaround for moto issue 7825)."""
    matches = _parsed_path(path).find(data)
    indefinite = bool(_INDEFINITE.search(path))
    if indefinite:
        return [match.value for match in matches]
    if not matches:
        raise moto_json_path.NoSuchJsonPathError(json_path=path, data=data)
    return matches[0].value


def _parsed_path_ext(path: str, debug: bool | None = None) -> Any:
    """jsonpath_ng.ext.parse, once per path (a parsed path is only read: find, update_or_create)."""
    return jsonpath_parse(path, debug) if debug else _parsed_path(path)


def _result_and_event_paths_parsed_once() -> None:
    """A state's ResultPath, and each of the eight paths of EventBridge's default input template (for every target
    of every matched event), were parsed again at each use: PLY's parser is built anew for each parse (tenths of
    a millisecond). Parse each path once."""
    if getattr(result_path_module, "parse", None) is not jsonpath_ng.parse:  # type: ignore[attr-defined]
        raise RuntimeError("moto's ResultPath no longer parses with jsonpath_ng.parse: revisit the local engine's glue")
    result_path_module.parse = functools.lru_cache(maxsize=4096)(jsonpath_ng.parse)  # type: ignore[attr-defined]
    # moto's EventTemplateParser.parse imports jsonpath_ng.ext's parse at each call.
    jsonpath_ng.ext.parse = _parsed_path_ext  # type: ignore[attr-defined]


def _definite_json_paths() -> None:
    original = moto_json_path.extract_json
    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and getattr(module, "extract_json", None) is original:
            module.extract_json = extract_json  # type: ignore[attr-defined]


def _json_ready(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if hasattr(value, "read"):  # a streamed body, such as s3:getObject's: Step Functions gives its text
        return value.read().decode("utf-8")
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    return value


def _json_ready_sdk_responses() -> None:
    """An `aws-sdk:` task's response can hold timestamps (botocore parses them to datetimes) and streamed
    bodies, which moto then fails to serialise or read: Step Functions gives both as text."""
    sdk = state_task_service_aws_sdk.StateTaskServiceAwsSdk
    original = sdk._eval_service_task

    @functools.wraps(original)
    def _eval_service_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        original(self, env, *args, **kwargs)
        env.stack.append(_json_ready(env.stack.pop()))

    sdk._eval_service_task = _eval_service_task  # type: ignore[method-assign]


def _start_time_as_text() -> None:
    """`$$.Execution.StartTime` is ISO 8601 text on AWS; moto leaves a datetime there, which States.Format and
    the history then fail to serialise."""
    original = ExecutionWorker._get_evaluation_environment

    @functools.wraps(original)
    def _get_evaluation_environment(self: Any) -> Any:
        env = original(self)
        execution = env.states.context_object.context_object_data["Execution"]
        start = execution.get("StartTime")
        if isinstance(start, dt.datetime):
            execution["StartTime"] = start.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return env

    ExecutionWorker._get_evaluation_environment = _get_evaluation_environment  # type: ignore[method-assign]


_SCALARS = (str, int, float, bool, type(None))


def json_copy(value: Any, memo: Any = None) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars), as copy.deepcopy makes it and about eight times faster:
    marshal writes and reads plain dicts, lists, strings and numbers in C (its exact-type checks refuse a
    subclass, an enum, a datetime, a Decimal). Data holding anything else is copied member by member, and what is
    not JSON data goes to copy.deepcopy."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict or kind is list:
        try:
            return marshal.loads(marshal.dumps(value))
        except ValueError:  # not plain data all the way down
            return _member_copy(value)
    return copy.deepcopy(value, memo)


def _member_copy(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {key: _member_copy(item) for key, item in value.items()}
    if kind is list:
        return [_member_copy(item) for item in value]
    if kind in _SCALARS:
        return value
    return copy.deepcopy(value)


_MODULES_THAT_COPY = (
    "moto.stepfunctions.parser.asl.eval.states",
    "moto.stepfunctions.parser.asl.component.common.string.string_expression",
    "moto.stepfunctions.parser.asl.component.common.path.result_path",
    "moto.stepfunctions.parser.asl.component.state.exec.execute_state",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.job",
    "moto.stepfunctions.parser.asl.component.state.exec.state_parallel.state_parallel",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service",
)


def _faster_copies_and_paths() -> None:
    """The interpreter deep-copies every state's input and output (a quarter of a batch's time, measured) and
    parses each JSONPath again each time it evaluates it. Copy JSON data with a JSON copier; parse once."""
    shim = types.SimpleNamespace(deepcopy=json_copy, copy=copy.copy)
    for name in _MODULES_THAT_COPY:
        module = importlib.import_module(name)
        if getattr(module, "copy", None) is not copy:
            raise RuntimeError(f"{name} no longer imports copy: revisit the local engine's glue")
        setattr(module, "copy", shim)  # noqa: B010


def _stored_input(env: Any) -> Any:
    """The state's input as the interpreter keeps it (its own copy, never changed in place): for reading only."""
    return env.states._states_data["input"]


def _history_details_without_copies() -> None:
    """StateEntered and StateExited history events hold the state's input and output as JSON text: moto took a
    deep copy of the value (`get_input()`) only to serialise it. Serialise the kept value; the text is the same."""

    # The two methods as moto 5.2.5 writes them, but for the copy (the canary test compares their source).
    def _get_state_entered_event_details(self: Any, env: Any) -> Any:
        return StateEnteredEventDetails(
            name=self.name,
            input=to_json_str(_stored_input(env), separators=(",", ":")),
            inputDetails=HistoryEventExecutionDataDetails(truncated=False),
        )

    def _get_state_exited_event_details(self: Any, env: Any) -> Any:
        event_details = StateExitedEventDetails(
            name=self.name,
            output=to_json_str(_stored_input(env), separators=(",", ":")),
            outputDetails=HistoryEventExecutionDataDetails(truncated=False),
        )
        assigned_variables = env.variable_store.get_assigned_variables()
        env.variable_store.reset_tracing()
        if assigned_variables:
            event_details["assignedVariables"] = assigned_variables
            event_details["assignedVariablesDetails"] = {"truncated": False}
        return event_details

    field = moto_state.CommonStateField
    field._get_state_entered_event_details = _get_state_entered_event_details  # type: ignore[method-assign]
    field._get_state_exited_event_details = _get_state_exited_event_details  # type: ignore[method-assign]


def _copy_running_state(self: Any, memo: dict[int, Any]) -> Any:
    """What copy.deepcopy makes of a ProgramRunning (a new object, its attributes deep-copied), without the
    generic reduce protocol: its attributes are names, text or None, which a deep copy leaves as they are."""
    kind: Any = type(self)
    copied = kind.__new__(kind)
    memo[id(self)] = copied
    state = vars(self)
    plain = all(type(value) in (str, type(None)) for value in state.values())
    copied.__dict__.update(state if plain else copy.deepcopy(state, memo))
    return copied


def _running_states_copied_directly() -> None:
    """Every frame the interpreter opens (each Task attempt, Map iteration, Parallel branch) and each look at an
    execution's state deep-copies its ProgramRunning through copy's generic reduce protocol (0.7 s of a run of
    10,000 events). Copy it directly."""
    if "__deepcopy__" in vars(ProgramRunning) or "__reduce_ex__" in vars(ProgramRunning):
        raise RuntimeError("moto's ProgramRunning copies itself now: revisit the local engine's glue")
    ProgramRunning.__deepcopy__ = _copy_running_state  # type: ignore[attr-defined]


# DynamoDB's AttributeValue (a union: one of these members).
_ATTRIBUTE_VALUE_MEMBERS = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})
_original_structure_serialiser = BaseJSONSerializer._serialize_type_structure


def _plain_attribute_value(value: Any) -> bool:
    """An AttributeValue the serialiser writes as it stands: a string, number, boolean or null, a string or number
    set, or a list or map of such values (a binary is written base64-encoded)."""
    if type(value) is not dict or len(value) != 1:
        return False
    ((kind, data),) = value.items()
    if kind in ("S", "N"):
        return type(data) is str
    if kind in ("BOOL", "NULL"):
        return type(data) is bool
    if kind in ("SS", "NS"):
        return type(data) is list and all(type(member) is str for member in data)
    if kind == "M":
        return type(data) is dict and all(type(name) is str and _plain_attribute_value(v) for name, v in data.items())
    if kind == "L":
        return type(data) is list and all(_plain_attribute_value(member) for member in data)
    return False


def _attribute_values_serialised_directly() -> None:
    """moto's response serialiser walks DynamoDB's AttributeValue shape for every attribute of every item it
    answers, trying several spellings of each of its ten members, down every list and map (a Scan of 10,000 items
    took seconds; a counter's lists of ids, a tenth of a run's DynamoDB time). A value of strings, numbers,
    booleans, nulls, string and number sets, lists and maps is already what the serialiser writes: write it as
    it is (the answer is turned into JSON text at once). Binaries go the serialiser's way (their members come
    back here)."""

    def _serialize_type_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if (
            key
            and shape.name == "AttributeValue"
            and _plain_attribute_value(value)
            and set(shape.members) == _ATTRIBUTE_VALUE_MEMBERS
        ):
            self._default_serialize(serialized, value, shape, key)
            return
        _original_structure_serialiser(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_structure = _serialize_type_structure  # type: ignore[method-assign]


_original_possible_keys = XFormedAttributePicker.get_possible_keys
# (member name, shape, parent shape) -> (shape, parent shape, the names to try): the shapes are kept, so that
# their ids are not reused while the entry lives.
_possible_keys: dict[tuple[str, int, int], tuple[Any, Any, tuple[str, ...]]] = {}


def _attribute_names_tried_once_per_shape() -> None:
    """moto's response serialiser finds each member of each answer by trying names: six alias rules, each name
    also in snake_case, worked out again for every member of every item (a GetRecords of 100 records took
    a tenth of a second). For a plain dict the names depend only on the member, its shape and the shape's
    parent: work them out once."""

    def get_possible_keys(self: Any, context: Any) -> Any:
        if type(context.obj) is not dict or self.alias_providers is not DEFAULT_ALIAS_PROVIDERS:
            return _original_possible_keys(self, context)
        shape = context.shape
        parent = getattr(shape, "parent", None)
        cache_key = (context.key, id(shape), id(parent))
        found = _possible_keys.get(cache_key)
        if found is None or found[0] is not shape or found[1] is not parent:
            found = (shape, parent, tuple(_original_possible_keys(self, context)))
            _possible_keys[cache_key] = found
        return found[2]

    XFormedAttributePicker.get_possible_keys = get_possible_keys  # type: ignore[method-assign]


# -- AWS's rules, enforced (aws_rules.py names each one's documentation) ----------------------------------------


def _within_quota(value: Any) -> bool:
    return aws_rules.payload_bytes(value) <= aws_rules.PAYLOAD_LIMIT_BYTES


class PayloadTooLarge(AWSError):
    """StartExecution refuses an input over 262144 bytes (the API reference's length bound of `input`)."""

    TYPE = "ValidationException"

    def __init__(self, size: int) -> None:
        super().__init__(
            "1 validation error detected: Value at 'input' failed to satisfy constraint: Member must have length "
            f"less than or equal to {aws_rules.PAYLOAD_LIMIT_BYTES} (it has {size} bytes)"
        )


def _task_failed(error: str, cause: str, **more: Any) -> Any:
    return EventDetails(taskFailedEventDetails=TaskFailedEventDetails(error=error, cause=cause, **more))  # type: ignore[typeddict-item]


def _data_limit_exceeded(env: Any, what: str) -> FailureEventException:
    name = StatesErrorNameType.StatesStatesDataLimitExceeded
    return FailureEventException(
        failure_event=FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=name),
            event_type=HistoryEventType.TaskFailed,
            event_details=_task_failed(
                name.to_name(), f"{what} exceeds the service's limit of {aws_rules.PAYLOAD_LIMIT_BYTES} bytes."
            ),
        )
    )


def _payload_limits() -> None:
    """256 KiB, as AWS counts it, on the execution's input and on every state's input (after Parameters) and
    output; moto checked outputs only, and refused exactly 262144 bytes, which AWS takes."""
    for module in (moto_state, state_task_service, state_task_lambda):
        if getattr(module, "is_within_size_quota", None) is None:
            raise RuntimeError(f"{module.__name__} no longer checks the size quota: revisit the local engine's glue")
        module.is_within_size_quota = _within_quota  # type: ignore[attr-defined]

    original_parameters = parargs.Parargs._eval_body

    @functools.wraps(original_parameters)
    def _eval_body(self: Any, env: Any) -> None:
        original_parameters(self, env)
        if not _within_quota(env.stack[-1]):
            state = env.states.context_object.context_object_data.get("State") or {}
            raise _data_limit_exceeded(env, f"The input of state '{state.get('Name', '?')}' after Parameters")

    parargs.Parargs._eval_body = _eval_body  # type: ignore[method-assign]

    original_start = StepFunctionsParserBackend.start_execution

    @functools.wraps(original_start)
    def start_execution(
        self: Any, state_machine_arn: str, name: Any = None, execution_input: Any = None, *args: Any, **kwargs: Any
    ) -> Any:
        if execution_input is not None and not _within_quota(execution_input):
            raise PayloadTooLarge(aws_rules.payload_bytes(execution_input))
        return original_start(self, state_machine_arn, name, execution_input, *args, **kwargs)

    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]


class RecordRefused(AWSError):
    """PutRecord refuses data over 1 MiB and a partition key not of 1 to 256 characters (the API reference's
    length bounds of `Data` and `PartitionKey`)."""

    TYPE = "ValidationException"

    def __init__(self, member: str, low: int, high: int) -> None:
        super().__init__(
            f"1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length "
            f"{'less than or equal to ' + str(high) if low == 0 else f'between {low} and {high}'}"
        )


def _kinesis_record_limit() -> None:
    """moto bounds the records of PutRecords at 1 MiB but takes any PutRecord: refuse what Kinesis refuses."""
    original = KinesisBackend.put_record

    @functools.wraps(original)
    def put_record(self: Any, *args: Any) -> Any:  # (stream_arn, stream_name, partition_key, hash_key, data)
        partition_key, data = args[2], args[-1]
        if len(base64.b64decode(data)) > aws_rules.KINESIS_RECORD_DATA_BYTES:
            raise RecordRefused("data", 0, aws_rules.KINESIS_RECORD_DATA_BYTES)
        if not 1 <= len(partition_key or "") <= aws_rules.KINESIS_PARTITION_KEY_CHARACTERS:
            raise RecordRefused("partitionKey", 1, aws_rules.KINESIS_PARTITION_KEY_CHARACTERS)
        return original(self, *args)

    KinesisBackend.put_record = put_record  # type: ignore[method-assign,assignment]


def _kinesis_sequence_ends_read_directly() -> None:
    """moto finds a shard's first and last sequence numbers by listing every record's (each PutRecord does, so
    putting n records took time in n squared): the shard's records are in sequence order, read the ends."""

    def get_min_sequence_number(self: Any) -> int:
        return next(iter(self.records), 0)

    def get_max_sequence_number(self: Any) -> int:
        return next(reversed(self.records), 0)

    KinesisShard.get_min_sequence_number = get_min_sequence_number  # type: ignore[method-assign]
    KinesisShard.get_max_sequence_number = get_max_sequence_number  # type: ignore[method-assign]


def _terminal_errors_escape_states_all() -> None:
    """`States.ALL` matched every error in moto; on AWS it does not match `States.DataLimitExceeded` nor
    `States.Runtime` (naming them explicitly still does)."""
    decl = error_equals_decl.ErrorEqualsDecl
    original = decl._eval_body
    wildcard = decl._STATE_ALL_ERROR

    @functools.wraps(original)
    def _eval_body(self: Any, env: Any) -> None:
        error = env.stack[-1]
        if (
            wildcard in self.error_names
            and isinstance(error, StatesErrorName)
            and error.error_name in aws_rules.NOT_MATCHED_BY_STATES_ALL
        ):
            env.stack.pop()
            env.stack.append(False)
            return
        original(self, env)

    decl._eval_body = _eval_body  # type: ignore[method-assign]


def _renamed(event: FailureEvent, name: str) -> FailureEvent:
    details: Any = event.event_details or {}
    failed = {key: value for key, value in dict(details.get("taskFailedEventDetails") or {}).items() if key != "error"}
    renamed = FailureEvent.__new__(FailureEvent)
    renamed.__dict__.update(event.__dict__)
    renamed.__dict__.update(
        error_name=CustomErrorName(name),
        event_type=HistoryEventType.TaskFailed,
        event_details=_task_failed(name, str(failed.pop("cause", "")), **failed),
    )
    return renamed


def _error_names_as_each_integration_raises_them() -> None:
    """A service error gets the name each integration gives it on AWS (aws_rules.error_name): moto named an
    unmodelled S3 code `s3.SlowDownException` (AWS: `S3.S3Exception`), optimised DynamoDB's `RequestLimitExceeded`
    without its suffix, Step Functions' `ExecutionAlreadyExists` with one, and turned every EventBridge error
    into an uncatchable `States.Runtime`."""
    classes = (
        state_task_service_aws_sdk.StateTaskServiceAwsSdk,
        state_task_service_dynamodb.StateTaskServiceDynamoDB,
        state_task_service_sfn.StateTaskServiceSfn,
        state_task_service_events.StateTaskServiceEvents,
        state_task_service_lambda.StateTaskServiceLambda,
    )
    for cls in classes:
        original = cls._from_error

        def _from_error(self: Any, env: Any, ex: Exception, _original: Any = original) -> FailureEvent:
            event: FailureEvent = _original(self, env, ex)
            if isinstance(ex, ClientError):
                code = str(ex.response["Error"]["Code"])
                return _renamed(event, aws_rules.error_name(self.resource.resource_arn, code))
            return event

        cls._from_error = _from_error  # type: ignore[method-assign]


_interpreter_call = threading.local()


def _is_express(backend: Any, execution_arn: str) -> bool:
    try:
        machine = backend.describe_state_machine_for_execution(execution_arn)
    except Exception:  # an unknown execution: let moto answer as it does
        return False
    return str(getattr(machine, "type", "STANDARD")).upper() == "EXPRESS"


def _no_history_api_for_express_executions() -> None:
    """Step Functions API reference: DescribeExecution ("not supported by EXPRESS state machines"),
    GetExecutionHistory ("not supported by EXPRESS state machines") and ListExecutions ("not supported by EXPRESS
    state machines") answer an Express workflow with an error; its history is only in CloudWatch Logs. moto
    answered all three. The engine itself reads its backend (execution_watch, execution_history, describe)."""

    def refuse_express(method: Callable[..., Any], param: str, code: str) -> Callable[..., Any]:
        @functools.wraps(method)
        def guarded(self: Any) -> Any:
            arn = str(self._get_param(param))
            backend = self.stepfunction_backend
            express = (
                str(backend.describe_state_machine(arn).type).upper() == "EXPRESS"
                if param == "stateMachineArn"
                else _is_express(backend, arn)
            )
            if express and not getattr(_interpreter_call, "active", False):
                raise AWSError(
                    exception_type=code,
                    message=f"{method.__name__}: this operation is not supported by EXPRESS state machines: {arn}",
                )
            return method(self)

        return guarded

    StepFunctionResponse.describe_execution = refuse_express(  # type: ignore[method-assign]
        StepFunctionResponse.describe_execution, "executionArn", "InvalidArn"
    )
    StepFunctionResponse.get_execution_history = refuse_express(  # type: ignore[method-assign]
        StepFunctionResponse.get_execution_history, "executionArn", "InvalidArn"
    )
    StepFunctionResponse.list_executions = refuse_express(  # type: ignore[method-assign]
        StepFunctionResponse.list_executions, "stateMachineArn", "StateMachineTypeNotSupported"
    )

    # A `.sync` Task awaits its child, an Express one too, inside Step Functions: moto polls DescribeExecution.
    sfn = state_task_service_sfn.StateTaskServiceSfn
    for name in ("_build_sync_resolver", "_build_sync2_resolver"):
        original = getattr(sfn, name)

        def build(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            resolver = _original(self, *args, **kwargs)

            def resolve() -> Any:
                _interpreter_call.active = True
                try:
                    return resolver()
                finally:
                    _interpreter_call.active = False

            return resolve

        setattr(sfn, name, build)


def describe_execution(account_id: str, region: str, execution_arn: str) -> dict[str, Any]:
    """What DescribeExecution would say, read from the backend: the engine knows its Express executions too."""
    execution: Any = stepfunctions_parser_backends[account_id][region].describe_execution(execution_arn)
    described: dict[str, Any] = {
        "executionArn": execution_arn,
        "name": execution.name,
        "stateMachineArn": execution.state_machine_arn,
        "status": execution.status,
        "startDate": execution.start_date,
        "input": json.dumps(execution.input_data),
    }
    if execution.stop_date is not None:
        described["stopDate"] = execution.stop_date
    if execution.status == "SUCCEEDED":
        output = execution.output
        described["output"] = output if isinstance(output, str) else json.dumps(output)
    for key in ("error", "cause"):
        if getattr(execution, key, None) is not None:
            described[key] = getattr(execution, key)
    return described


def list_executions(account_id: str, region: str, state_machine_arn: str, status: str | None = None) -> list[str]:
    backend = stepfunctions_parser_backends[account_id][region]
    executions = backend.describe_state_machine(state_machine_arn).executions
    chosen = [execution for execution in executions if status is None or execution.status == status]
    return [execution.execution_arn for execution in sorted(chosen, key=lambda e: e.start_date, reverse=True)]


# -- execution history in CloudWatch Logs ------------------------------------------------------------------------

_logs_lock = threading.Lock()


class _ExecutionLogSession(CloudWatchLoggingSession):
    """Writes each history event the state machine's log level takes as the record AWS writes (execution_logs):
    moto's own session failed on its text timestamps, and wrote neither AWS's fields nor its stream names."""

    def publish_history_log(self, history_log: Any) -> None:
        event_type = str(getattr(history_log["type"], "value", history_log["type"]))
        moment = dt.datetime.fromisoformat(str(history_log["event_timestamp"]).replace("Z", "+00:00"))
        event: dict[str, Any] = {
            "id": history_log["id"],
            "previousEventId": history_log["previous_event_id"],
            "type": event_type,
            "timestamp": moment,
        }
        if history_log.get("details") is not None:
            event[execution_logs.details_member(event_type)] = history_log["details"]
        configuration = self.configuration
        record = execution_logs.log_record(
            event, self.execution_arn, include_execution_data=bool(configuration.include_execution_data)
        )
        machine_name = str(configuration.state_machine_arn).rsplit(":", 1)[-1]
        stream = execution_logs.log_stream_name(machine_name, moment)
        message = json.dumps(record, separators=(",", ":"), default=str)
        entry = {"timestamp": int(record["event_timestamp"]), "message": message}
        logs = self._logs_client
        group = configuration.log_group_name
        with _logs_lock:
            if group not in logs.groups:
                return  # the log group is gone: AWS drops the record too
            if stream not in logs.groups[group].streams:
                logs.create_log_stream(group, stream)
            logs.put_log_events(group, stream, [entry])


def _logging_of(machine: Any) -> CloudWatchLoggingConfiguration | None:
    configuration: Any = dict(getattr(machine, "loggingConfiguration", None) or {})
    if str(configuration.get("level") or "OFF") == "OFF":
        return None
    configuration["includeExecutionData"] = bool(configuration.get("includeExecutionData", False))
    found: CloudWatchLoggingConfiguration | None = CloudWatchLoggingConfiguration.from_logging_configuration(
        state_machine_arn=machine.arn, logging_configuration=configuration
    )
    return found


def _execution_logs_in_cloudwatch() -> None:
    """A state machine whose LoggingConfiguration has a level writes its executions' history events to its log
    group, as AWS does (the only history an Express execution has); moto never started a logging session."""
    original = ParserExecution.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if self._cloud_watch_logging_session is None:
            configuration = _logging_of(self.state_machine)
            if configuration is not None:
                self._cloud_watch_logging_session = _ExecutionLogSession(self.exec_arn, configuration)

    ParserExecution.__init__ = __init__  # type: ignore[method-assign]


class InvalidLoggingConfiguration(AWSError):
    TYPE = "InvalidLoggingConfiguration"


def _logging_configuration_checked() -> None:
    """CreateStateMachine and UpdateStateMachine refuse a LoggingConfiguration AWS refuses (aws_rules)."""
    for name in ("create_state_machine", "update_state_machine"):
        original = getattr(StepFunctionsParserBackend, name)

        def checked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            problem = aws_rules.logging_configuration_problem(
                kwargs.get("loggingConfiguration", kwargs.get("logging_configuration"))
            )
            if problem is not None:
                raise InvalidLoggingConfiguration(f"Invalid Logging Configuration: {problem}")
            return _original(self, *args, **kwargs)

        setattr(StepFunctionsParserBackend, name, functools.wraps(original)(checked))


def _http_invokes_run_the_handler() -> None:
    """An Invoke that reaches moto's Lambda over HTTP (`serve`) runs the function's handler in this process, as
    an in-process Invoke does; moto (without Docker, its "simple" Lambda) would echo the payload."""
    original = LambdaSimpleBackend.invoke

    @functools.wraps(original)
    def invoke(self: Any, *args: Any) -> Any:  # function name, qualifier, body, request and response headers
        function_name, _, body, headers, response_headers = args
        runtime = botocore_hooks.responder("lambda")
        if runtime is None:
            return original(self, *args)
        payload = body.encode() if isinstance(body, str) else body
        params = {"FunctionName": function_name, "Payload": payload or b"{}"}
        params["InvocationType"] = headers.get("X-Amz-Invocation-Type", "RequestResponse")
        try:
            answer = runtime("Invoke", params)
        except botocore_hooks.ServiceError as error:
            if error.code != "ResourceNotFoundException":
                raise
            return original(self, *args)
        if answer is None:
            return original(self, *args)
        if "FunctionError" in answer:
            response_headers["x-amz-function-error"] = answer["FunctionError"]
        response_headers["x-amz-executed-version"] = answer.get("ExecutedVersion", "$LATEST")
        return answer["Payload"].read()

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign,assignment]
