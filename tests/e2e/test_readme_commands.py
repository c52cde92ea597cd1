"""Every command the README and docs/ show runs as written, after `make demo` (so `demo-output/` exists).

The commands are read from the ```sh blocks and the `$ ` lines of output samples; `.venv/bin/incremental-analytics`
is this command line, run in-process. A command that needs a shell (`$(...)`: the session against `serve` in
docs/local-aws.md, which tests/e2e/test_serve.py runs) is left to its own test.
Those naming `--stack incremental-analytics` run against that stack deployed into the embedded local AWS (what
`sam deploy` with samconfig.toml, or `serve`, names it); `serve` itself runs until Ctrl-C and has its own tests."""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from incremental_analytics.domain.rules import CountCondition, Operator, Rule, RuleType
from incremental_analytics_cli.cli import main
from incremental_analytics_local import LocalAws, LocalProduct
from tests.conftest import ROOT

PROGRAM = ".venv/bin/incremental-analytics"


def _shown_commands() -> list[str]:
    commands: list[str] = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for kind, block in re.findall(r"```(\w*)\n(.*?)```", page.read_text(), flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                command = line.split(" # ", 1)[0].strip().removeprefix("$ ")
                shown = kind == "sh" or line.startswith("$ ")
                if shown and command.startswith(PROGRAM) and "$(" not in command and " serve" not in command:
                    commands.append(command)
    return commands


COMMANDS = _shown_commands()
LOCAL = [command for command in COMMANDS if "--stack" not in command]
ON_A_STACK = [command for command in COMMANDS if "--stack" in command]


def test_the_docs_show_commands_of_both_kinds() -> None:
    assert len(LOCAL) >= 6 and len(ON_A_STACK) >= 5
    assert all("[" not in command and "<" not in command for command in COMMANDS), "placeholders can't be pasted"


def _run(command: str) -> int:
    words = shlex.split(command)
    assert words[0] == PROGRAM
    return main(words[1:])


@pytest.fixture(scope="module")
def after_make_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clone")
    assert main(["demo", "--out", str(folder / "demo-output"), "--users", "20", "--events", "300"]) == 0
    return folder


@pytest.mark.parametrize("command", LOCAL)
def test_a_local_command_runs_as_written(command: str, after_make_demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(after_make_demo)
    assert _run(command) == 0


@pytest.fixture(scope="module")
def a_stack(after_make_demo: Path) -> Iterator[LocalAws]:
    with LocalAws(time_scale=0.001) as aws:
        product = LocalProduct(aws)  # the stack `incremental-analytics`
        product.put_rules([Rule("clicks", RuleType.AGGREGATE, "click", count=CountCondition(Operator.GREATER, 2))])
        now = int(time.time() * 1000)
        product.put_events({"user_id": "ann", "event_type": "click", "timestamp": now - 1000 + n} for n in range(3))
        product.ingest()
        product.deliver()
        yield aws


@pytest.mark.parametrize("command", ON_A_STACK)
def test_a_stack_command_runs_as_written(
    command: str, a_stack: LocalAws, after_make_demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(after_make_demo)
    monkeypatch.setenv("AWS_DEFAULT_REGION", a_stack.region)
    assert _run(command) == 0
