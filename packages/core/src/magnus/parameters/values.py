"""What a parameter can be: its name, a value JSON can carry, what a function's return sets.

Parameters are a flat mapping of string keys to JSON values: keys travel as environment
variable names, values as JSON text (run log records, ``MAGNUS_PRM_*`` variables). A name or a
value that cannot make that journey is refused where it is produced, naming the parameter. A
python function may return ``None``, a pydantic model instance or a dict with string keys.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from magnus.exceptions import ParameterError

#: the types whose values are already JSON values
SCALARS = (str, int, float, bool, type(None))
_REPR_LIMIT = 80


def where(step_name: str) -> str:
    """The start of an error message about the step ``step_name`` (empty outside a step)."""
    return f"Step {step_name!r}: " if step_name else ""


def short_repr(value: Any, limit: int = _REPR_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages."""
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


PARAMETER_NAME_RULE = "parameter names must be non-empty strings without '=' or NUL characters"


def is_parameter_name(key: Any) -> bool:
    """Whether ``key`` can name a parameter."""
    # Names travel as environment variable names, where '=' and NUL cannot appear.
    return isinstance(key, str) and bool(key) and "=" not in key and "\0" not in key


def check_name(key: Any, step_name: str, func_name: str) -> None:
    """Refuse (``ParameterError``) a name that cannot name a parameter."""
    if not is_parameter_name(key):
        by = f"function {func_name} " if func_name else ""
        raise ParameterError(
            f"{where(step_name)}{by}produced parameter name {key!r}; {PARAMETER_NAME_RULE}"
        )


def jsonable_value(key: str, value: Any, step_name: str, func_name: str) -> Any:
    """``value`` as a JSON value that can travel as text; ``ParameterError`` naming ``key``."""
    if type(value) in SCALARS:
        jsonable = value
    else:
        try:
            jsonable = to_jsonable_python(value, by_alias=True)
        except Exception as exc:
            by = f"function {func_name} " if func_name else ""
            raise ParameterError(
                f"{where(step_name)}{by}produced parameter {key!r} = {short_repr(value)} "
                f"({type(value).__name__}), which is not JSON-serialisable: {exc}"
            ) from exc
    digits = _unreadable_int_digits(jsonable)
    if digits:
        raise unreadable_int(key, digits, step_name, func_name)
    return jsonable


# Parameters travel as JSON text (run log records, MAGNUS_PRM_* variables) and Python reads an
# integer back from text only up to sys.get_int_max_str_digits() digits (4300 by default): a
# longer one would reach the next step as an error, or not at all. It is refused where it is
# produced, naming the parameter. NaN and infinities, which JSON lacks too, travel as the
# NaN/Infinity tokens Python's json module reads and writes, so every reader gets the value.


@functools.lru_cache(maxsize=4)
def _smallest_unreadable(limit: int) -> int:
    return 10**limit


def _unreadable_int_digits(value: Any) -> int:
    """About how many digits the first integer in ``value`` that text cannot carry has (or 0)."""
    limit = sys.get_int_max_str_digits()
    if not limit:
        return 0
    bound = _smallest_unreadable(limit)
    pending = [value]
    while pending:
        item = pending.pop()
        if type(item) is int:
            if item >= bound or -item >= bound:
                return int(item.bit_length() * math.log10(2)) + 1
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return 0


def unreadable_int(key: str, digits: int, step_name: str, func_name: str) -> ParameterError:
    """The error for an integer of about ``digits`` digits, too long to travel as text."""
    by = f"function {func_name} " if func_name else ""
    return ParameterError(
        f"{where(step_name)}{by}produced parameter {key!r} holding an integer of about "
        f"{digits} digits; parameters travel as JSON text, from which Python reads integers "
        f"of at most {sys.get_int_max_str_digits()} digits: pass it as a string"
    )


def returned_parameters(value: Any, step_name: str = "", func_name: str = "") -> dict[str, Any]:
    """The parameters a python function's return value sets.

    ``None`` sets none; a pydantic model instance sets each top-level field (by alias, values
    dumped to JSON); a dict with string keys sets each key. Anything else, including a model
    *class*, fails, as does a value that JSON cannot express (the message names its key).
    """
    if value is None:
        return {}

    what: str
    if isinstance(value, BaseModel):
        try:
            # Checked below as a returned dict is (an integer too long for JSON text, ...).
            value = value.model_dump(mode="json", by_alias=True)
        except Exception:
            # Find which field is at fault by checking the fields one by one below.
            fields = type(value).model_fields
            value = {(info.alias or name): getattr(value, name) for name, info in fields.items()}
    elif isinstance(value, type) and issubclass(value, BaseModel):
        what = f"the pydantic model class {value.__qualname__} rather than an instance of it"
        raise _bad_return(what, step_name, func_name)
    elif not isinstance(value, Mapping):
        raise _bad_return(type(value).__qualname__, step_name, func_name)

    for key in value:
        if not isinstance(key, str):
            what = f"a dict with the non-string key {short_repr(key)}"
            raise _bad_return(what, step_name, func_name)

    result: dict[str, Any] = {}
    for key, item in value.items():
        check_name(key, step_name, func_name)
        result[key] = jsonable_value(key, item, step_name, func_name)
    return result


def _bad_return(what: str, step_name: str, func_name: str) -> ParameterError:
    function = f"function {func_name}" if func_name else "the function"
    return ParameterError(
        f"{where(step_name)}{function} returned {what}; return None, a dict or a pydantic "
        f"model whose top-level keys become parameters"
    )
