"""The progress of a composite step's branches on the console: a bar, or a few plain lines.

On a terminal the bar is one line redrawn in place (``\\r``, no newline, at most ten times a
second) and ended with a newline when the step ends. Anywhere else (a pipe, a file, CI) redrawing
makes a mess and a line per branch floods the log: a plain line is written each time another
tenth of the branches has ended, so a map over any number of elements writes at most ten.
Neither uses ANSI codes: the bar is drawn with ``#`` and ``-``, and an erased line is overwritten
with spaces.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: characters of the bar between its brackets
BAR_WIDTH = 20
#: the shortest time between two redraws of a live bar
REDRAW_SECONDS = 0.1
#: how many plain lines at most a composite's progress writes when not on a terminal
PLAIN_LINES = 10


class Progress:
    """How many of a composite step's branches have ended, shown as they end.

    ``write`` writes text as it is (no newline added); ``live`` draws a bar redrawn in place.
    """

    def __init__(
        self, name: str, total: int, unit: str, write: Callable[[str], None], live: bool
    ) -> None:
        self.name = name
        self.total = total
        self.unit = unit
        self.done = 0
        self.failed = 0
        self._write = write
        self._live = live
        self._drawn = ""  # the live line on the screen now ("" when there is none)
        self._last_draw = 0.0
        self._plain_lines = 0  # tenths already written as plain lines

    def text(self) -> str:
        """``fan [#####---------------] 50/200 elements, 2 failed``."""
        filled = BAR_WIDTH * self.done // self.total if self.total else BAR_WIDTH
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.name} [{bar}] {self.done}/{self.total} {self.unit}{failed}"

    def start(self) -> None:
        """Draw the empty bar (a plain output says nothing until a tenth has ended)."""
        if self._live:
            self._draw()

    def branch_ended(self, failed: bool) -> None:
        """Count one more ended branch and show it if it is time to."""
        self.done += 1
        self.failed += failed
        if self._live:
            if self.done >= self.total or time.monotonic() - self._last_draw >= REDRAW_SECONDS:
                self._draw()
            return
        tenths = self.done * PLAIN_LINES // self.total if self.total else PLAIN_LINES
        if tenths > self._plain_lines:
            self._plain_lines = tenths
            self._write(f"  {self.text()}\n")

    def erase(self) -> None:
        """Take the live bar off its line, so that other lines can be written; see ``redraw``."""
        if self._drawn:
            self._write("\r" + " " * len(self._drawn) + "\r")
            self._drawn = ""

    def redraw(self) -> None:
        """Draw the live bar again after ``erase``."""
        if self._live:
            self._draw()

    def finish(self) -> None:
        """The step ended: leave the bar as it is on its own line."""
        if self._live:
            self._draw()
            self._write("\n")
            self._drawn = ""

    def _draw(self) -> None:
        text = self.text()
        # Spaces cover what a longer line drawn before left behind.
        self._write("\r" + text + " " * (len(self._drawn) - len(text)))
        self._drawn = text
        self._last_draw = time.monotonic()
