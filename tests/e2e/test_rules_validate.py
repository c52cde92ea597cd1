"""`rules validate` on whatever a rules file holds: the problems, one a line, and exit 1; never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from incremental_analytics.domain.rules_validation import MAX_FILE_BYTES
from incremental_analytics_cli.cli import main
from tests.unit.test_rules_files_hostile import ALIAS_BOMB, HEADER, ROW


@pytest.mark.parametrize(
    ("name", "content", "first_problem"),
    [
        ("cp1252.csv", (HEADER + ROW).encode("cp1252"), "the file is not UTF-8 text: byte 0xE9 at line 2, column 15"),
        ("cell.csv", (HEADER + ROW.replace("café", "x" * 131_073)).encode(), "row 2, column EventName: 131,073"),
        ("deep.json", b"[" * 5000 + b"]" * 5000, "not valid rules: nested 5000 levels deep"),
        ("bomb.yaml", ALIAS_BOMB, "not valid YAML: more than 500,000 values, counting what each alias repeats"),
        ("header.csv", HEADER.encode(), "no rules: the file has a header row but no rule rows"),
        ("empty.json", b"[]", "no rules: the list of rules is empty"),
        ("extra.csv", (HEADER + ROW.strip() + ",x\n").encode(), "row 2, column M: 'x' is in a column with no header"),
    ],
)
def test_a_hostile_file_gets_its_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes, first_problem: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["rules", "validate", str(path)]) == 1
    printed = capsys.readouterr()
    assert printed.out.startswith(first_problem) and "Traceback" not in printed.out + printed.err
    assert printed.err == f"{path}: 1 problem(s); nothing would be applied\n"


def test_a_file_over_the_limit_is_refused_by_its_size_without_reading_it_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as file:
        file.truncate(50 * MAX_FILE_BYTES)  # a sparse file: 200 MiB of NULs that nothing needs to read
    assert main(["rules", "validate", str(path)]) == 1
    assert capsys.readouterr().out == (
        f"the file is {50 * MAX_FILE_BYTES:,} bytes; a rules file may hold at most {MAX_FILE_BYTES:,} bytes\n"
    )


def test_thousands_of_problems_are_counted_and_the_first_thousand_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "".join(f"aggregator,e{n},na,999,more,3,na,999,no,,,k\n" for n in range(1500)))
    assert main(["rules", "validate", str(path)]) == 1
    printed = capsys.readouterr()
    assert len(printed.out.splitlines()) == 1000
    assert printed.err == f"{path}: 1,500 problem(s) (the first 1,000 listed); nothing would be applied\n"
