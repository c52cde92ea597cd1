"""The `incremental-analytics` command line."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import boto3

from incremental_analytics.domain.delivery import DeliveryState
from incremental_analytics.domain.rules_loading import RulesError, load_rules_file
from incremental_analytics_local import explain as explaining
from incremental_analytics_local import outcomes_commands, rules_commands
from incremental_analytics_local import trace as tracing
from incremental_analytics_local.demo import demo
from incremental_analytics_local.faults import Fault, FaultError, parse_fault
from incremental_analytics_local.runner import RunError, RunOptions, run
from incremental_analytics_local.stacks import StackError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STACK_HELP = "a deployed stack's name (uses your AWS credentials)"


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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("must be from 1 to 10000")
    return value


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
        return _with_stack(lambda session: outcomes_commands.redrive_stack(args.stack, session, args.outcome))
    state = DeliveryState(args.outcomes_command)
    if args.stack:
        return _with_stack(
            lambda session: outcomes_commands.listing_text(
                outcomes_commands.from_stack(args.stack, session, state), state
            )
        )
    try:
        print(outcomes_commands.listing_text(outcomes_commands.from_run(args.source, state), state))
    except StackError as error:
        return _fail(str(error))
    return EXIT_OK


def command_explain(args: argparse.Namespace) -> int:
    try:
        if args.stack:
            record = explaining.from_stack(args.stack, args.user, boto3.session.Session())
        else:
            record = explaining.from_run(args.source)
        print(explaining.explain(record, args.user, args.rule))
    except explaining.ExplainError as error:
        return _fail(str(error))
    return EXIT_OK


def command_trace(args: argparse.Namespace) -> int:
    try:
        record = tracing.load_trace(args.source, args.execution)
    except (FileNotFoundError, ValueError) as error:
        return _fail(str(error))
    out = args.html or args.source / "traces" / f"{record['name']}.html"
    out.write_text(tracing.render_html(record))
    print(tracing.text_path(record))
    print(f"trace written to {out}")
    return EXIT_OK


def command_rules(args: argparse.Namespace) -> int:
    if args.rules_command == "list":
        return _with_stack(lambda session: rules_commands.list_text(rules_commands.stack_rules(args.stack, session)))
    try:
        content = args.file.read_bytes()
        rules = load_rules_file(args.file.name, content)
    except OSError as error:
        return _fail(f"cannot read {args.file}: {error.strerror or error}")
    except RulesError as error:
        for problem in error.problems:
            print(problem)
        print(f"{args.file}: {len(error.problems)} problem(s); nothing would be applied", file=sys.stderr)
        return EXIT_FAILED
    if args.rules_command == "validate":
        print(f"{args.file}: {len(rules)} valid rule(s)")
    elif args.rules_command == "show":
        print(json.dumps({"rules": [rule.to_dict() for rule in rules]}, indent=2))
    elif args.rules_command == "diff":
        return _with_stack(
            lambda session: rules_commands.diff_text(rules_commands.stack_rules(args.stack, session), rules)
        )
    elif args.stack:
        return _with_stack(lambda session: rules_commands.push_to_stack(args.file, content, args.stack, session))
    else:
        print(rules_commands.push_locally(args.file, content))
    return EXIT_OK


def _with_stack(action: Callable[[Any], str]) -> int:
    try:
        print(action(boto3.session.Session()))
    except StackError as error:
        return _fail(str(error))
    return EXIT_OK


def command_demo(args: argparse.Namespace) -> int:
    try:
        demo(args.out, users=args.users, events=args.events)
    except RunError as error:
        return _fail(str(error))
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="incremental-analytics",
        description="Per-user counters and rules over behavioural event streams, run on an embedded local AWS.",
    )
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
    run_parser.add_argument("--batch-size", type=_positive, default=100, help="records per batch (default 100)")
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
    source.add_argument("--stack", help=STACK_HELP)
    explain_parser.set_defaults(handler=command_explain)

    trace_parser = commands.add_parser(
        "trace",
        help="an execution's path through its state machine, as an HTML page",
        description="Draw the state machine with the path an execution took, every visited state with its input, "
        "output, error and retries, into one self-contained HTML file; print the path.",
    )
    trace_parser.add_argument("--from", dest="source", type=Path, required=True, help="a `run` output folder")
    trace_parser.add_argument("--execution", help="execution name or ARN (default: the first kept)")
    trace_parser.add_argument("--html", type=Path, help="where to write the page")
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
    push.add_argument("--stack", help=STACK_HELP)
    push.set_defaults(handler=command_rules)
    listing = rules_commands_parser.add_parser(
        "list", help="the rules a deployed stack holds", description="the rules a deployed stack holds"
    )
    listing.add_argument("--stack", required=True, help=STACK_HELP)
    listing.set_defaults(handler=command_rules)
    difference = rules_commands_parser.add_parser(
        "diff",
        help="what pushing a rules file would change",
        description="Rules FILE would create, change and delete in a deployed stack, and which changes purge "
        "counters (SPEC 3.2) or start an evaluation.",
    )
    difference.add_argument("file", type=Path)
    difference.add_argument("--stack", required=True, help=STACK_HELP)
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
        listing = outcomes_actions.add_parser(name, help=text, description=text)
        where = listing.add_mutually_exclusive_group(required=True)
        where.add_argument("--from", dest="source", type=Path, help="a `run` output folder")
        where.add_argument("--stack", help=STACK_HELP)
        listing.set_defaults(handler=command_outcomes)
    redrive = outcomes_actions.add_parser(
        "redrive",
        help="deliver abandoned outcomes again, to the sinks that gave up on them",
        description="Put abandoned outcomes (all, or those named with --outcome) back among the pending ones with "
        "their attempts reset, and start DeliverOutcomes for them: only the sinks that gave up are sent them.",
    )
    redrive.add_argument("--stack", required=True, help=STACK_HELP)
    redrive.add_argument("--outcome", action="append", default=[], metavar="OUTCOME_ID", help="only this outcome")
    redrive.set_defaults(handler=command_outcomes)

    demo_parser = commands.add_parser(
        "demo",
        help="the 2021 guide's cases on synthetic events, end to end, in about a minute",
        description="Deploy the product locally, load spreadsheet rules, stream synthetic events, and show who "
        "qualified, one explanation and one trace.",
    )
    demo_parser.add_argument("--out", type=Path, default=Path("demo-output"))
    demo_parser.add_argument("--users", type=int, default=50)
    demo_parser.add_argument("--events", type=int, default=1500)
    demo_parser.set_defaults(handler=command_demo)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
