"""The Python example in docs/local-aws.md runs as it stands, and prints what its comments say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_the_local_aws_example_runs_as_written(tmp_path: Path) -> None:
    (block,) = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "local-aws.md").read_text(), flags=re.S)
    script = tmp_path / "example.py"
    script.write_text(block)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout.splitlines()
    assert printed[0] == "[('ann', 'clicks', 'qualified')]"
    assert printed[1] == "{'eventbridge': 1, 'pinpoint': 0, 'profiles': 0}"
    assert "'dynamodb.TransactWriteItems': 1" in printed[2]
