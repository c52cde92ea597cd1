"""What importing the embedded local AWS costs, once per process.

moto's EC2 models (imported by its Step Functions interpreter, for the Batch integration) list the regions of
their services through three new boto3 sessions as the module is imported; each session reads and parses
botocore's endpoint data afresh (a megabyte of JSON): 0.45 s of every process's start. While the engine's
modules are imported, botocore's data files are parsed once and shared by the sessions made then (moto's,
which only read them); any session made afterwards reads its own, as botocore does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.loaders import JSONFileLoader


@contextmanager
def botocore_data_read_once() -> Iterator[None]:
    original = JSONFileLoader.load_file
    read: dict[str, Any] = {}

    def load_file(self: JSONFileLoader, file_path: str) -> Any:
        if file_path not in read:
            read[file_path] = original(self, file_path)
        return read[file_path]

    JSONFileLoader.load_file = load_file
    try:
        yield
    finally:
        JSONFileLoader.load_file = original
