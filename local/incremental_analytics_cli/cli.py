"""The `incremental-analytics` command line."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from incremental_analytics.domain.delivery import DeliveryState
from incremental_analytics.domain.events import IdentityMode
from incremental_analytics.domain.rules_loading import RulesError, load_rules_file
from incremental_analytics_cli import explain as explaining
from incremental_analytics_cli import outcomes_commands, rules_commands, serving, stack_traces
from incremental_analytics_cli import trace as tracing
from incremental_analytics_cli.demo import SOURCES, demo
from incremental_analytics_cli.invocation import NAME, command_name
from incremental_analytics_cli.runner import RunError, RunOptions, run
from incremental_analytics_cli.stacks import StackError
from incremental_analytics_local import Fault, FaultError, parse_fault

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"incremental-analytics: error: {message}", file=sys.stderr)
    return code


def _timestamp(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be a fraction from 0 to 1")
    return value


def _whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}")
        return value

    return parse


def _session(args: argparse.Namespace) -> Any:
    """The AWS session a `--stack` command uses: --profile and --region, else the usual AWS configuration."""
    try:
        session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
    except BotoCoreError as error:  # an unknown profile
        raise StackError(str(error)) from None
    if not session.region_name:
        raise StackError("no AWS region: pass --region, or set AWS_DEFAULT_REGION or a region in your AWS profile")
    return session


def _fault(text: str) -> Fault:
    try:
        return parse_fault(text)
    except FaultError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def command_run(args: argparse.Namespace) -> int:
    options = RunOptions(
        rules=args.rules,
        events=args.events,
        out=args.out,
        now=args.now,
        batch_size=args.batch_size,
        redeliver=args.redeliver,
        seed=args.seed,
        faults=tuple(args.inject_fault),
        identity=IdentityMode(args.identity),
    )
    try:
        summary = run(options)
    except RulesError as error:
        return _fail(f"{args.rules}: {error}")
    except RunError as error:
        return _fail(str(error))
    outcomes = summary["outcomes"]
    print(
        f"{summary['records']} records: {summary['accepted']} accepted, {summary['ignored']} ignored, "
        f"{summary['rejected']} rejected, {summary['duplicates']} duplicates; outcomes: "
        f"{outcomes['qualified']} qualified, {outcomes['disqualified']} disqualified, {outcomes['reached']} reached; "
        "delivered: " + ", ".join(f"{sink} {count}" for sink, count in summary["deliveries"].items()) + ". "
        f"Written to {args.out}"
    )
    return EXIT_OK


def command_outcomes(args: argparse.Namespace) -> int:
    if args.outcomes_command == "redrive":
        return _with_stack(args, lambda session: outcomes_commands.redrive_stack(args.stack, session, args.outcome))
    state = DeliveryState(args.outcomes_command)
    if args.stack:
        return _with_stack(
            args,
            lambda session: outcomes_commands.listing_text(
                outcomes_commands.from_stack(args.stack, session, state), state
            ),
        )
    try:
        print(outcomes_commands.listing_text(outcomes_commands.from_run(args.source, state), state))
    except StackError as error:
        return _fail(str(error))
    return EXIT_OK


def command_explain(args: argparse.Namespace) -> int:
    if args.stack:
        return _with_stack(
            args,
            lambda session: explaining.explain(
                explaining.from_stack(args.stack, args.user, session, trace_flags=_session_flags(args)),
                args.user,
                args.rule,
            ),
        )
    try:
        print(explaining.explain(explaining.from_run(args.source), args.user, args.rule))
    except explaining.ExplainError as error:
        return _fail(str(error))
    return EXIT_OK


def _session_flags(args: argparse.Namespace) -> list[str]:
    """The --region and --profile a command was given, to repeat in a command it suggests."""
    return [
        flag for name in ("region", "profile") if getattr(args, name) for flag in (f"--{name}", getattr(args, name))
    ]


def command_trace(args: argparse.Namespace) -> int:
    if args.stack:
        if not args.execution:
            return _fail("trace --stack needs --execution NAME or ARN", EXIT_USAGE)
        return _with_stack(args, lambda session: _trace_stack(args, session))
    try:
        record = tracing.load_trace(args.source, args.execution)
    except (FileNotFoundError, ValueError) as error:
        return _fail(str(error))
    out = args.html or args.source / "traces" / f"{record['name']}.html"
    out.write_text(tracing.render_html(record))
    print(tracing.text_path(record))
    print(f"trace written to {out}")
    return EXIT_OK


def _trace_stack(args: argparse.Namespace, session: Any) -> str:
    record = stack_traces.stack_trace_record(args.stack, args.execution, session)
    out = args.html or Path(f"{record['name']}.html")
    out.write_text(tracing.render_html(record))
    lines = [tracing.text_path(record)]
    if not record["execution_data"]:
        lines.append("(logged without execution data: no inputs or outputs; see docs/tracing.md)")
    lines.append(f"trace written to {out}")
    return "\n".join(lines)


def command_rules(args: argparse.Namespace) -> int:
    if args.rules_command == "list":
        return _with_stack(
            args, lambda session: rules_commands.list_text(rules_commands.stack_rules(args.stack, session))
        )
    try:
        content, size = rules_commands.read_rules_file(args.file)
        rules = load_rules_file(args.file.name, content, size=size)
    except OSError as error:
        return _fail(f"cannot read {args.file}: {error.strerror or error}")
    except RulesError as error:
        for problem in error.problems:
            print(problem)
        listed = "" if error.total == len(error.problems) else f" (the first {len(error.problems):,} listed)"
        print(f"{args.file}: {error.total:,} problem(s){listed}; nothing would be applied", file=sys.stderr)
        return EXIT_FAILED
    if args.rules_command == "validate":
        print(f"{args.file}: {len(rules)} valid rule(s)")
    elif args.rules_command == "show":
        print(json.dumps({"rules": [rule.to_dict() for rule in rules]}, indent=2))
    elif args.rules_command == "diff":
        return _with_stack(
            args, lambda session: rules_commands.diff_text(rules_commands.stack_rules(args.stack, session), rules)
        )
    elif args.stack:
        return _with_stack(args, lambda session: rules_commands.push_to_stack(args.file, content, args.stack, session))
    else:
        print(rules_commands.push_locally(args.file, content))
    return EXIT_OK


def _with_stack(args: argparse.Namespace, action: Callable[[Any], str]) -> int:
    """Run `action` with the stack's AWS session; any AWS or configuration failure is one line, never a traceback."""
    try:
        print(action(_session(args)))
    except (StackError, explaining.ExplainError) as error:
        return _fail(str(error))
    except (BotoCoreError, ClientError) as error:
        return _fail(f"stack {args.stack}: {error}")
    return EXIT_OK


def command_demo(args: argparse.Namespace) -> int:
    try:
        demo(args.out, users=args.users, events=args.events, source=args.source)
    except RunError as error:
        return _fail(str(error))
    return EXIT_OK


def command_serve(args: argparse.Namespace) -> int:
    if args.rules is not None:  # checked before anything starts
        try:
            load_rules_file(args.rules.name, args.rules.read_bytes())
        except OSError as error:
            return _fail(f"cannot read {args.rules}: {error.strerror or error}")
        except RulesError as error:
            return _fail(f"{args.rules}: {error}")
    stopping = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stopping.set())
    print("Deploying infra/template.yaml into the embedded local AWS...", flush=True)
    try:
        with serving.serving(port=args.port, stack_name=args.stack_name, report=_activity) as served:
            print(serving.banner(served, command_name()), flush=True)
            if args.rules is not None:
                print(serving.load_rules(served, args.rules), flush=True)
            while not stopping.wait(0.5):
                pass
            print("Stopping...", flush=True)
    except OSError as error:
        return _fail(str(error))
    print("Stopped.")
    return EXIT_OK


def _activity(line: str) -> None:
    print(f"{dt.datetime.now(dt.UTC):%H:%M:%S} {line}", flush=True)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (and exit status 2), like every other failure of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _stack_options(command: argparse.ArgumentParser, *, required: bool = False, group: Any = None) -> None:
    (group or command).add_argument(
        "--stack", required=required, help="a deployed stack's name (uses your AWS credentials)"
    )
    command.add_argument("--region", help="the stack's AWS Region (default: your AWS configuration's)")
    command.add_argument("--profile", help="the AWS profile to use (default: your AWS configuration's)")


def parser() -> argparse.ArgumentParser:
    root = _Parser(
        prog=NAME,
        description="Per-user counters and rules over behavioural event streams, run on an embedded local AWS.",
    )
    root.add_argument("--version", action="version", version=f"%(prog)s {metadata.version(NAME)}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run_parser = commands.add_parser(
        "run",
        help="run the whole product locally on a rules file and an events file",
        description="Deploy the SAM template on the embedded local AWS, stream EVENTS (JSONL) through the real "
        "workflows and write outcomes.jsonl, attributes.json, emitted.jsonl, rejected.jsonl and summary.json.",
    )
    run_parser.add_argument("--rules", type=Path, required=True, help="JSON, YAML or Honeycode-layout CSV rules")
    run_parser.add_argument("--events", type=Path, required=True, help="one event per line (JSONL)")
    run_parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    run_parser.add_argument("--now", type=_timestamp, help="time of the date/window evaluation (ISO-8601)")
    run_parser.add_argument("--batch-size", type=_whole(1, 10_000), default=100, help="records per batch (default 100)")
    run_parser.add_argument("--redeliver", type=_fraction, default=0.0, help="fraction of batches delivered again")
    run_parser.add_argument("--seed", type=int, default=0, help="seed for the redelivery choices")
    run_parser.add_argument(
        "--inject-fault",
        type=_fault,
        action="append",
        default=[],
        metavar="SERVICE.Operation[:N]",
        help="make the next N calls (default 1) of that AWS operation fail with its throttling error, whoever "
        "calls it, e.g. pinpoint.UpdateEndpoint:5 or dynamodb.TransactWriteItems:20 (repeatable)",
    )
    run_parser.add_argument(
        "--identity",
        choices=[mode.value for mode in IdentityMode],
        default=IdentityMode.USER_OR_ENDPOINT.value,
        help="whom a record that names no user id is about: its endpoint (endpoint:<id>) or Segment anonymous id "
        "(the default), or nobody: rejected as missing_user_id (user)",
    )
    run_parser.set_defaults(handler=command_run)

    explain_parser = commands.add_parser(
        "explain",
        help="why a user qualified (or did not yet)",
        description="The rule as it stood, its conditions against the user's count and sum, the period, the "
        "contributing events, the sink deliveries and the execution that decided it.",
    )
    explain_parser.add_argument("--user", required=True)
    explain_parser.add_argument("--rule", help="only this rule")
    source = explain_parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="source", type=Path, help="a `run` output folder")
    _stack_options(explain_parser, group=source)
    explain_parser.set_defaults(handler=command_explain)

    trace_parser = commands.add_parser(
        "trace",
        help="an execution's path through its state machine, as an HTML page",
        description="Draw the state machine with the path an execution took, every visited state with its input, "
        "output, error and retries, into one self-contained HTML file; print the path.",
    )
    traced = trace_parser.add_mutually_exclusive_group(required=True)
    traced.add_argument("--from", dest="source", type=Path, help="a `run` output folder")
    _stack_options(trace_parser, group=traced)
    trace_parser.add_argument(
        "--execution",
        help="execution name or ARN (with --from, default: the first kept; with --stack, required: its history is "
        "read from GetExecutionHistory, or for an Express workflow from its CloudWatch Logs)",
    )
    trace_parser.add_argument(
        "--html", type=Path, help="where to write the page (default: traces/NAME.html in the run folder; NAME.html)"
    )
    trace_parser.set_defaults(handler=command_trace)

    rules_parser = commands.add_parser("rules", help="check rules files, and push them to the product")
    rules_commands_parser = rules_parser.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    for name, text in (("validate", "list every problem of a rules file"), ("show", "print the normalised rules")):
        action = rules_commands_parser.add_parser(name, help=text, description=text)
        action.add_argument("file", type=Path)
        action.set_defaults(handler=command_rules)
    push = rules_commands_parser.add_parser(
        "push",
        help="upload a rules file: the whole rule set from now on",
        description="Upload FILE under rules/ in a deployed stack's data bucket (--stack), where SyncRules applies "
        "it; without --stack, into the embedded local AWS, printing what SyncRules and RulesChanged did.",
    )
    push.add_argument("file", type=Path)
    _stack_options(push)
    push.set_defaults(handler=command_rules)
    listing = rules_commands_parser.add_parser(
        "list", help="the rules a deployed stack holds", description="the rules a deployed stack holds"
    )
    _stack_options(listing, required=True)
    listing.set_defaults(handler=command_rules)
    difference = rules_commands_parser.add_parser(
        "diff",
        help="what pushing a rules file would change",
        description="Rules FILE would create, change and delete in a deployed stack, and which changes purge "
        "counters (see docs/rules.md) or start an evaluation.",
    )
    difference.add_argument("file", type=Path)
    _stack_options(difference, required=True)
    difference.set_defaults(handler=command_rules)

    outcomes_parser = commands.add_parser(
        "outcomes",
        help="outcomes some sink still lacks, and redriving the abandoned ones",
        description="List the outcomes some sink has not taken yet (pending: they are redelivered after a backoff) "
        "or has given up on (abandoned: after MaxDeliveryAttempts), from a run folder or a deployed stack; "
        "redrive abandoned outcomes on a stack.",
    )
    outcomes_actions = outcomes_parser.add_subparsers(dest="outcomes_command", required=True, metavar="ACTION")
    for name, text in (
        ("pending", "outcomes some sink still lacks; the scheduled redelivery tries them again"),
        ("abandoned", "outcomes a sink gave up on after MaxDeliveryAttempts attempts"),
    ):
        listed = outcomes_actions.add_parser(name, help=text, description=text)
        where = listed.add_mutually_exclusive_group(required=True)
        where.add_argument("--from", dest="source", type=Path, help="a `run` output folder")
        _stack_options(listed, group=where)
        listed.set_defaults(handler=command_outcomes)
    redrive = outcomes_actions.add_parser(
        "redrive",
        help="deliver abandoned outcomes again, to the sinks that gave up on them",
        description="Put abandoned outcomes (all, or those named with --outcome) back among the pending ones with "
        "their attempts reset, and start DeliverOutcomes for them: only the sinks that gave up are sent them.",
    )
    _stack_options(redrive, required=True)
    redrive.add_argument("--outcome", action="append", default=[], metavar="OUTCOME_ID", help="only this outcome")
    redrive.set_defaults(handler=command_outcomes)

    serve_parser = commands.add_parser(
        "serve",
        help="run the product on a local AWS that the AWS CLI, boto3 and --stack commands can use, until Ctrl-C",
        description="Deploy the SAM template into the embedded local AWS, served over HTTP on 127.0.0.1 and "
        "registered as a CloudFormation stack, with its Pipes, S3 notifications and schedules running in the "
        "background, until Ctrl-C. Point tools at it with AWS_ENDPOINT_URL (or --endpoint-url). See "
        "docs/local-aws.md.",
    )
    serve_parser.add_argument(
        "--port", type=_whole(0, 65535), default=serving.DEFAULT_PORT, help="the port (default 4566; 0: a free one)"
    )
    serve_parser.add_argument("--rules", type=Path, help="a rules file to push once the stack is up")
    serve_parser.add_argument(
        "--stack-name", default=serving.STACK_NAME, help=f"the stack's name (default {serving.STACK_NAME})"
    )
    serve_parser.set_defaults(handler=command_serve)

    demo_parser = commands.add_parser(
        "demo",
        help="the 2021 guide's cases on synthetic events, end to end, in about a minute",
        description="Deploy the product locally, load spreadsheet rules, stream synthetic events, and show who "
        "qualified, one explanation and one trace.",
    )
    demo_parser.add_argument("--out", type=Path, default=Path("demo-output"), help="folder for the results")
    demo_parser.add_argument("--users", type=_whole(1, 100_000), default=50, help="how many users (default 50)")
    demo_parser.add_argument("--events", type=_whole(1, 1_000_000), default=1500, help="how many events (default 1500)")
    demo_parser.add_argument(
        "--source",
        choices=list(SOURCES),
        default="generic",
        help="the shape of the synthetic events: Amazon Pinpoint event-stream records, Segment track calls, or the "
        "generic shape (default)",
    )
    demo_parser.set_defaults(handler=command_demo)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
