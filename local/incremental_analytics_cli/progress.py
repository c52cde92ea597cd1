"""A small progress bar on standard error, shown only on a terminal and only for work that takes a while."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO | None = None, delay: float = 1.0) -> None:
        self.label, self.total, self.done = label, max(total, 1), 0
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.delay = delay
        self.enabled = self.stream.isatty()
        self._drawn = False

    def advance(self, step: int = 1) -> None:
        self.done += step
        if self.enabled and time.monotonic() - self.started >= self.delay:
            self._draw()

    def _draw(self) -> None:
        width = 30
        filled = int(width * min(self.done, self.total) / self.total)
        bar = "#" * filled + "-" * (width - filled)
        elapsed = time.monotonic() - self.started
        self.stream.write(f"\r{self.label:<22} [{bar}] {self.done}/{self.total} {elapsed:5.1f}s")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


@contextmanager
def progress(label: str, total: int) -> Iterator[Progress]:
    bar = Progress(label, total)
    try:
        yield bar
    finally:
        bar.close()
