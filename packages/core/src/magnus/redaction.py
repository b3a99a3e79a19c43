"""Keeping served secrets out of everything a process records or prints.

Every secret value a secrets provider serves in this process is registered with the process-wide
:data:`redactor` (``BaseSecrets.get`` does it, so every provider does). What the process then
writes down -- attempt messages, metrics, execution logs, executed notebooks, the console, log
records, what observers are handed -- goes through the redactor, which replaces each served value
with :data:`MASK`. Parameters are not masked but referenced (``magnus.secret_parameters``): the
next step must get the value itself.

Rules (decided, tested in ``tests/core/test_redaction.py``):

* Values shorter than :data:`MIN_SECRET_LENGTH` characters are served but *not* redacted: masking
  every ``"1"`` or ``"on"`` would shred logs and the run log. A warning naming the secret (never
  its value) is logged once per secret name.
* Longer values are replaced longest first, so a secret that contains another is masked whole.
* A value that JSON would escape (quotes, backslashes, newlines, non-ASCII) is also redacted in
  its escaped form, since parameters travel as JSON in ``MAGNUS_PRM_*`` variables and the run log
  is JSON.
* When nothing was served, every entry point returns its input unchanged at the cost of one
  truth test (the fast path).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any, TextIO, TypeVar

logger = logging.getLogger(__name__)

#: what a served secret is replaced with
MASK = "********"
#: served values shorter than this are not redacted (see the module docstring)
MIN_SECRET_LENGTH = 4

T = TypeVar("T")


class Redactor:
    """Remembers the secret values served in this process and masks them in text and data.

    Thread-safe: registration takes a lock and only records the value; the pattern is compiled
    again, once, by the next redaction (serving many secrets in a row stays linear).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # every form to mask: the served values and their JSON-escaped variants
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._max_length = 0
        self._stale = False
        self._warned_short: set[str] = set()
        # the served values by the name they were served under (for references to them)
        self._names: dict[str, str] = {}
        self._named_pattern: re.Pattern[str] | None = None

    # ---------------------------------------------------------------------------------------------
    # what is known
    # ---------------------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether any value is being redacted (``False`` means every call is a no-op)."""
        return bool(self._forms)

    @property
    def max_length(self) -> int:
        """The length of the longest form being redacted (0 when none)."""
        return self._max_length

    def __contains__(self, value: object) -> bool:
        return value in self._forms

    def register(self, value: str, name: str = "") -> None:
        """Redact ``value`` from now on; ``name`` (the secret's name) is only used in warnings."""
        if not value or (value in self._forms and (not name or value in self._names)):
            return
        if len(value) < MIN_SECRET_LENGTH:
            self._warn_short(name)
            return
        forms = {f for f in (value, *_json_forms(value)) if len(f) >= MIN_SECRET_LENGTH}
        with self._lock:
            if name:
                self._names.setdefault(value, name)
            self._forms |= forms
            self._max_length = max(self._max_length, *(len(f) for f in forms))
            self._stale = True

    def _current(self) -> re.Pattern[str] | None:
        """The pattern of every form, compiled again if values were registered since."""
        if self._stale:
            with self._lock:
                if self._stale:
                    # Longest first: the alternation takes the first alternative that matches, so
                    # a secret containing another one is masked whole rather than in pieces.
                    ordered = sorted(self._forms, key=lambda f: (-len(f), f))
                    self._pattern = re.compile("|".join(re.escape(f) for f in ordered))
                    named = sorted(self._names, key=lambda f: (-len(f), f))
                    self._named_pattern = (
                        re.compile("|".join(re.escape(f) for f in named)) if named else None
                    )
                    self._stale = False
        return self._pattern

    def clear(self) -> None:
        """Forget every registered value (for tests; a real process never forgets)."""
        with self._lock:
            self._forms = set()
            self._pattern = None
            self._stale = False
            self._max_length = 0
            self._warned_short = set()
            self._names = {}
            self._named_pattern = None

    def _warn_short(self, name: str) -> None:
        if name in self._warned_short:
            return
        self._warned_short.add(name)
        which = f"The secret {name!r} is" if name else "A secret value is"
        logger.warning(
            "%s shorter than %d characters: it is served but not redacted from logs, the console "
            "or the run log",
            which,
            MIN_SECRET_LENGTH,
        )

    # ---------------------------------------------------------------------------------------------
    # redaction
    # ---------------------------------------------------------------------------------------------

    def redact_text(self, text: str) -> str:
        """``text`` with every served value replaced by :data:`MASK`."""
        pattern = self._current()
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def redact(self, obj: T) -> T:
        """``obj`` with served values masked in every string inside it.

        Walks dicts (keys and values), lists, tuples (named ones keep their type), sets and
        strings; anything else is returned as it is, so convert models to JSON-ready data first.
        """
        if not self._forms:
            return obj
        return self._walk(obj)

    def _walk(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.redact_text(obj)
        if isinstance(obj, dict):
            return {self._walk(k): self._walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._walk(item) for item in obj]
        if isinstance(obj, tuple):
            items = [self._walk(item) for item in obj]
            return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
        if isinstance(obj, (set, frozenset)):
            return type(obj)(self._walk(item) for item in obj)
        return obj

    def split_named(self, text: str) -> list[str] | None:
        """``text`` cut around the served values it holds, or ``None`` when it holds none.

        The parts alternate: literal text at even positions, the *name* of the secret found at
        odd ones (``"x<value of TOKEN>y"`` -> ``["x", "TOKEN", "y"]``). Only values served under
        a name are found, and only as they are (not JSON-escaped): check what remains with
        :meth:`redact_text`.
        """
        if self._current() is None or not text:
            return None
        pattern = self._named_pattern
        if pattern is None:
            return None
        parts: list[str] = []
        end = 0
        for match in pattern.finditer(text):
            parts += [text[end : match.start()], self._names[match.group()]]
            end = match.end()
        if not parts:
            return None
        parts.append(text[end:])
        return parts

    def pending_start(self, text: str) -> int | None:
        """Where the longest suffix of ``text`` that could begin a served value starts.

        That suffix is a proper prefix of some registered form, so text written after it might
        complete a secret; a stream must hold it back. ``None`` when no suffix qualifies.
        """
        forms = self._forms
        if not forms:
            return None
        # A form of length L can only begin in the last L - 1 characters as an incomplete prefix.
        first = max(0, len(text) - self._max_length + 1)
        for start in range(first, len(text)):
            tail = text[start:]
            if any(len(form) > len(tail) and form.startswith(tail) for form in forms):
                return start
        return None


def redact_exception(error: BaseException, redactor: Redactor | None = None) -> BaseException:
    """Mask served secrets in ``error``'s string arguments, in place; returns ``error``.

    What observers and logs show of an exception (``str(error)``, a formatted traceback) comes
    from its arguments for nearly every exception type; chained causes are masked too.
    """
    redactor = redactor if redactor is not None else get_redactor()
    if not redactor.active:
        return error
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        args = current.args
        masked = tuple(redactor.redact_text(a) if isinstance(a, str) else a for a in args)
        if masked != args:
            # (an exception type may fix its arguments: then it stays as it is)
            with contextlib.suppress(AttributeError, TypeError):
                current.args = masked
        current = current.__cause__ or current.__context__
    return error


def _json_forms(value: str) -> set[str]:
    """How ``value`` reads inside JSON strings, when that differs from the value itself."""
    forms = {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    forms.discard(value)
    return forms


#: the process-wide redactor that secrets providers register with
redactor = Redactor()


def get_redactor() -> Redactor:
    """The process-wide :class:`Redactor`."""
    return redactor


class RedactingStream(io.TextIOBase):
    """A text stream that writes to ``stream`` with served secrets masked.

    A secret may reach the stream split across several ``write`` calls (``print`` writes the text
    and the line end separately; a subprocess pipe is read in chunks). The stream therefore holds
    back the end of what was written when it could be the beginning of a secret -- at most one
    character less than the longest secret, and only when it really is such a prefix -- and
    writes it once the next write settles the matter. Ordinary output (a line that does not end
    in part of a secret) is passed on at once.

    ``flush()`` flushes ``stream`` but keeps held-back text: releasing it would write half a
    secret whenever a task flushes mid-secret. ``close()`` (or :meth:`release`) writes it out,
    masked as far as it can be; the wrapped ``stream`` is closed only if ``owns_stream``.

    Only text is redacted: the wrapped stream's binary ``buffer`` is deliberately not exposed.
    """

    def __init__(
        self, stream: TextIO, redactor: Redactor | None = None, owns_stream: bool = False
    ) -> None:
        super().__init__()
        self._stream = stream
        self._redactor = redactor if redactor is not None else get_redactor()
        self._owns_stream = owns_stream
        self._pending = ""
        self._lock = threading.RLock()

    @property
    def wrapped(self) -> TextIO:
        """The stream written to."""
        return self._stream

    # io.TextIOBase defaults describe a detached stream; describe the wrapped one instead.
    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8") or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._stream, "errors", None)

    def isatty(self) -> bool:
        return bool(getattr(self._stream, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        """Write ``text`` (masked); returns ``len(text)`` as streams do."""
        if self.closed:
            raise ValueError("I/O operation on closed RedactingStream")
        with self._lock:
            if not self._pending and not self._redactor.active:
                self._stream.write(text)  # fast path: nothing to hide
                return len(text)
            self._stream.write(self._settle(self._pending + text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:  # type: ignore[override]
        for line in lines:
            self.write(line)

    def _settle(self, text: str) -> str:
        """The masked part of ``text`` that later writes cannot change; keeps the rest pending."""
        redactor = self._redactor
        pattern = redactor._current()
        if pattern is None:
            self._pending = ""
            return text
        matches = list(pattern.finditer(text))
        cut = len(text)
        hold = redactor.pending_start(text)
        while hold is not None:
            # A match that started before the held-back tail and runs into it is complete and
            # final (its start cannot begin a longer secret), so the cut moves past it.
            straddling = next((m for m in matches if m.start() < hold < m.end()), None)
            if straddling is None:
                cut = hold
                break
            later = redactor.pending_start(text[straddling.end() :])
            hold = None if later is None else straddling.end() + later
        self._pending = text[cut:]
        # Matches wholly before the cut are exactly those pattern.sub finds in text[:cut].
        return pattern.sub(MASK, text[:cut])

    def release(self) -> None:
        """Write out held-back text (masked) now, accepting that no more text will complete it."""
        with self._lock:
            if self._pending:
                pending, self._pending = self._pending, ""
                self._stream.write(self._redactor.redact_text(pending))

    def flush(self) -> None:
        """Flush the wrapped stream; held-back text stays held (see the class docstring)."""
        # (closing flushes too, after an owned stream is closed)
        if not self.closed and not getattr(self._stream, "closed", False):
            self._stream.flush()

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not getattr(self._stream, "closed", False):
                self.release()
                self._stream.flush()
            if self._owns_stream:
                self._stream.close()
        finally:
            super().close()


class RedactingFilter(logging.Filter):
    """A logging filter that masks served secrets in a record's message, exception and stack.

    The message is formatted (``msg % args``) before masking, because an argument's ``str()``
    may contain a secret that masking the arguments one by one would miss. Attach it to
    *handlers*: a logger's filters do not see records propagated from its children.
    """

    def __init__(self, redactor: Redactor | None = None, name: str = "") -> None:
        super().__init__(name)
        self._redactor = redactor if redactor is not None else get_redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self._redactor
        if not redactor.active:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the handler reports it when it formats
            return True
        masked = redactor.redact_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.redact_text(record.stack_info)
        return True
