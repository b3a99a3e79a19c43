"""Parameters: binding them to python function arguments, reading returns, moving them around.

Parameters are a flat mapping of string keys to JSON values. They reach python functions as
keyword arguments (coerced to each argument's annotation with pydantic), come back as the
function's return value, and cross process boundaries as ``MAGNUS_PRM_<key>`` environment
variables holding JSON text. Unlike 0.5, keys keep their case everywhere.

Decisions taken where 0.5 behaved differently from its documentation (spec 7.4, 7.5):

* unannotated and ``Any`` arguments receive the value as it is;
* generic annotations (``list[int]``, ``Optional[int]``, ``dict[str, int]``, unions,
  ``Annotated``) are honoured through pydantic's ``TypeAdapter`` in lax mode, which also accepts
  numbers for ``str`` arguments as 0.5's ``str(value)`` did;
* a pydantic-model argument validates its value with the model's own configuration, so extra
  keys are ignored unless the model says ``extra="forbid"`` (0.5 always ignored them);
* ``**kwargs`` receives every parameter not bound by name; ``*args`` is left empty;
* a function may return ``None``, a pydantic model instance or a dict with string keys.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import sys
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.errors import PydanticUserError
from pydantic_core import to_jsonable_python

from magnus.exceptions import ParameterError

logger = logging.getLogger(__name__)

PARAMETER_PREFIX = "MAGNUS_PRM_"

_EMPTY = inspect.Parameter.empty
_SCALARS = (str, int, float, bool, type(None))
_REPR_LIMIT = 80


# ------------------------------------------------------------------------------ messages


def _where(step_name: str) -> str:
    return f"Step {step_name!r}: " if step_name else ""


def _short_repr(value: Any, limit: int = _REPR_LIMIT) -> str:
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")


def _callable_name(func: Callable[..., Any]) -> str:
    target: Any = func
    while isinstance(target, functools.partial):
        target = target.func
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    if qualname is None:
        qualname = type(target).__qualname__
    return f"{module}.{qualname}" if module else str(qualname)


def _validation_reason(exc: ValidationError, limit: int = 3) -> str:
    reasons = []
    for error in exc.errors()[:limit]:
        location = ".".join(str(part) for part in error.get("loc", ()))
        reasons.append(f"{location}: {error['msg']}" if location else error["msg"])
    if exc.error_count() > limit:
        reasons.append(f"and {exc.error_count() - limit} more errors")
    return "; ".join(reasons)


# ------------------------------------------------------------------------------ coercion


def _is_model_class(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _passes_through(annotation: Any) -> bool:
    # A string here is an annotation typing could not resolve (e.g. a TYPE_CHECKING import).
    return (
        annotation is _EMPTY
        or annotation is Any
        or annotation is None
        or isinstance(annotation, str)
    )


# 0.5 called T(value), so a YAML number reached a ``str`` argument as text; keep that.
_LAX_CONFIG = ConfigDict(coerce_numbers_to_str=True)
# Classes pydantic has no schema for (a DataFrame, say) are checked with isinstance.
_ARBITRARY_CONFIG = ConfigDict(coerce_numbers_to_str=True, arbitrary_types_allowed=True)


def _build_adapter(annotation: Any) -> TypeAdapter[Any]:
    last_error: PydanticUserError | None = None
    # Models, dataclasses and TypedDicts refuse a config (they carry their own), hence the
    # fallback to none; schema-less classes need arbitrary types.
    for config in (_LAX_CONFIG, None, _ARBITRARY_CONFIG):
        try:
            return TypeAdapter(annotation, config=config)
        except PydanticUserError as exc:
            last_error = exc
    assert last_error is not None
    raise last_error


@functools.lru_cache(maxsize=512)
def _cached_adapter(annotation: Any) -> TypeAdapter[Any]:
    return _build_adapter(annotation)


def _adapter(annotation: Any) -> TypeAdapter[Any]:
    try:
        hash(annotation)
    except TypeError:  # e.g. Annotated[...] with unhashable metadata: build it every time
        return _build_adapter(annotation)
    return _cached_adapter(annotation)


def cast_value(
    value: Any,
    annotation: Any,
    name: str = "",
    *,
    step_name: str = "",
    func_name: str = "",
) -> Any:
    """Coerce ``value`` to ``annotation`` as a function argument called ``name`` would be.

    ``annotation`` may be any type pydantic understands: plain types (``int`` from ``"3"``),
    generics, unions, ``Annotated`` and pydantic models. ``inspect.Parameter.empty``, ``Any``
    and ``None`` mean "no annotation": the value is returned unchanged. For a pydantic model, a
    value that is neither a mapping nor a model is wrapped as ``{name: value}`` first (as 0.5
    did), so ``get_parameter("x", cast_as=ModelWithFieldX)`` works on a scalar.

    Raises ``ParameterError`` naming the step, function, parameter, expected type, a short
    repr of the value and pydantic's reason.
    """
    if _passes_through(annotation):
        return value
    if name and _is_model_class(annotation) and not isinstance(value, (Mapping, BaseModel)):
        value = {name: value}
    try:
        return _adapter(annotation).validate_python(value)
    except ValidationError as exc:
        reason = _validation_reason(exc)
    except PydanticUserError as exc:
        reason = f"pydantic cannot validate this annotation ({exc})"
    of_function = f" of function {func_name}" if func_name else ""
    subject = f"parameter {name!r}" if name else "the value"
    raise ParameterError(
        f"{_where(step_name)}{subject}{of_function} expects {_type_name(annotation)} but got "
        f"{_short_repr(value)} ({type(value).__name__}): {reason}"
    )


# ------------------------------------------------------------------------------ binding


@dataclass(frozen=True)
class _Slot:
    name: str
    annotation: Any
    has_default: bool


@dataclass(frozen=True)
class _Plan:
    """What ``bind_arguments`` needs to know about a callable, computed once per callable."""

    func_name: str
    by_name: tuple[_Slot, ...]
    positional_only: tuple[_Slot, ...]
    var_keyword: _Slot | None


def _hints_target(func: Callable[..., Any]) -> Any:
    target: Any = func
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.isclass(target):
        return target.__init__
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        # A callable instance: its annotations live on the class's __call__ (for a class
        # without one this finds the metaclass's slot wrapper, which isfunction rejects).
        call = type(target).__call__
        if inspect.isfunction(call):
            return call
    return target


def _build_plan(func: Callable[..., Any]) -> _Plan:
    func_name = _callable_name(func)
    signature = inspect.signature(func)
    try:
        hints: dict[str, Any] | None = typing.get_type_hints(
            _hints_target(func), include_extras=True
        )
    except Exception as exc:
        # Resolving one annotation failed (commonly a name imported under TYPE_CHECKING):
        # fall back to the raw annotations and pass unresolved ones through unchecked.
        logger.warning(
            "Cannot resolve the annotations of %s (%s); unresolved ones are not coerced",
            func_name,
            exc,
        )
        hints = None

    by_name: list[_Slot] = []
    positional_only: list[_Slot] = []
    var_keyword: _Slot | None = None
    for parameter in signature.parameters.values():
        annotation = (
            hints.get(parameter.name, _EMPTY) if hints is not None else parameter.annotation
        )
        slot = _Slot(parameter.name, annotation, parameter.default is not _EMPTY)
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            positional_only.append(slot)
        elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = slot
        elif parameter.kind is not inspect.Parameter.VAR_POSITIONAL:
            by_name.append(slot)
    return _Plan(func_name, tuple(by_name), tuple(positional_only), var_keyword)


@functools.lru_cache(maxsize=4096)
def _cached_plan(func: Callable[..., Any]) -> _Plan:
    return _build_plan(func)


def _plan(func: Callable[..., Any]) -> _Plan:
    try:
        return _cached_plan(func)
    except TypeError:
        # Unhashable callables (a bound method of an unhashable instance) are rare; inspect
        # them every time rather than key a cache on id(), which could be reused.
        return _build_plan(func)


def bind_arguments(
    func: Callable[..., Any],
    parameters: Mapping[str, Any],
    map_variables: Mapping[str, Any] | None = None,
    step_name: str = "",
) -> dict[str, Any]:
    """The keyword arguments to call ``func`` with, taken from parameters and map variables.

    Every argument of ``func`` is looked up by name among the parameters and the map
    variables (a map variable wins over a parameter of the same name) and coerced to its
    annotation (see :func:`cast_value`; string annotations are resolved). An argument that is
    not found keeps its default; without a default the step fails. ``**kwargs`` receives every
    candidate not bound by name (coerced to its annotation, if any); ``*args`` stays empty.
    Positional-only arguments cannot be bound by name: without a default they fail the step.

    Raises ``ParameterError`` naming the step, the function (``module.qualname``) and the
    argument.
    """
    plan = _plan(func)
    candidates = {**parameters, **map_variables} if map_variables else parameters

    for slot in plan.positional_only:
        if not slot.has_default:
            raise ParameterError(
                f"{_where(step_name)}function {plan.func_name} has positional-only parameter "
                f"{slot.name!r} without a default; magnus passes parameters by name, so "
                f"remove the '/' from its signature or give {slot.name!r} a default"
            )

    bound: dict[str, Any] = {}
    for slot in plan.by_name:
        if slot.name in candidates:
            bound[slot.name] = cast_value(
                candidates[slot.name],
                slot.annotation,
                slot.name,
                step_name=step_name,
                func_name=plan.func_name,
            )
        elif not slot.has_default:
            raise ParameterError(
                f"{_where(step_name)}function {plan.func_name} needs parameter {slot.name!r} "
                f"but no parameter of that name is set"
            )

    if plan.var_keyword is not None:
        annotation = plan.var_keyword.annotation
        for key, value in candidates.items():
            if key not in bound:
                bound[key] = cast_value(
                    value, annotation, key, step_name=step_name, func_name=plan.func_name
                )
    return bound


# ------------------------------------------------------------------------------ serialising


def _jsonable_or_repr(value: Any) -> Any:
    if type(value) in _SCALARS:
        return value
    try:
        return to_jsonable_python(value, by_alias=True, fallback=repr)
    except Exception:  # e.g. bytes that are not UTF-8, or a reference cycle
        return repr(value)


def consumed_parameters(bound: Mapping[str, Any], *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The JSON-serialisable form of bound arguments, as the attempt log records them.

    Pydantic models become their JSON dump (by alias); values JSON cannot express become
    their ``repr``. Keys in ``exclude`` are left out (map variables are not parameters, so
    the caller may choose to omit them).
    """
    skipped = set(exclude)
    return {key: _jsonable_or_repr(value) for key, value in bound.items() if key not in skipped}


PARAMETER_NAME_RULE = "parameter names must be non-empty strings without '=' or NUL characters"


def is_parameter_name(key: Any) -> bool:
    """Whether ``key`` can name a parameter."""
    # Names travel as environment variable names, where '=' and NUL cannot appear.
    return isinstance(key, str) and bool(key) and "=" not in key and "\0" not in key


def _check_key(key: Any, step_name: str, func_name: str) -> None:
    if not is_parameter_name(key):
        by = f"function {func_name} " if func_name else ""
        raise ParameterError(
            f"{_where(step_name)}{by}produced parameter name {key!r}; {PARAMETER_NAME_RULE}"
        )


def _jsonable_value(key: str, value: Any, step_name: str, func_name: str) -> Any:
    if type(value) in _SCALARS:
        jsonable = value
    else:
        try:
            jsonable = to_jsonable_python(value, by_alias=True)
        except Exception as exc:
            by = f"function {func_name} " if func_name else ""
            raise ParameterError(
                f"{_where(step_name)}{by}produced parameter {key!r} = {_short_repr(value)} "
                f"({type(value).__name__}), which is not JSON-serialisable: {exc}"
            ) from exc
    digits = _unreadable_int_digits(jsonable)
    if digits:
        raise _unreadable_int(key, digits, step_name, func_name)
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


def _unreadable_int(key: str, digits: int, step_name: str, func_name: str) -> ParameterError:
    by = f"function {func_name} " if func_name else ""
    return ParameterError(
        f"{_where(step_name)}{by}produced parameter {key!r} holding an integer of about "
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
            what = f"a dict with the non-string key {_short_repr(key)}"
            raise _bad_return(what, step_name, func_name)

    result: dict[str, Any] = {}
    for key, item in value.items():
        _check_key(key, step_name, func_name)
        result[key] = _jsonable_value(key, item, step_name, func_name)
    return result


def _bad_return(what: str, step_name: str, func_name: str) -> ParameterError:
    function = f"function {func_name}" if func_name else "the function"
    return ParameterError(
        f"{_where(step_name)}{function} returned {what}; return None, a dict or a pydantic "
        f"model whose top-level keys become parameters"
    )


# ------------------------------------------------------------------------------ environment


def to_environment(parameters: Mapping[str, Any]) -> dict[str, str]:
    """``MAGNUS_PRM_<key>`` = JSON text for every parameter, keys keeping their case."""
    environment: dict[str, str] = {}
    for key, value in parameters.items():
        _check_key(key, "", "")
        jsonable = _jsonable_value(key, value, "", "")
        environment[PARAMETER_PREFIX + key] = json.dumps(jsonable)
    return environment


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """Parameters from the ``MAGNUS_PRM_*`` entries of ``environ`` (other entries ignored).

    The prefix is stripped and the rest of the name kept as it is (0.5 lower-cased it). Values
    are JSON-decoded; a value that is not JSON (``export MAGNUS_PRM_x=hello`` in a shell step)
    is kept as the raw string.
    """
    parameters: dict[str, Any] = {}
    prefix_length = len(PARAMETER_PREFIX)
    for name, text in environ.items():
        if not name.startswith(PARAMETER_PREFIX) or len(name) == prefix_length:
            continue
        try:
            parameters[name[prefix_length:]] = json.loads(text)
        except ValueError as exc:
            if "integer string conversion" in str(exc):  # a number, not text: never alter it
                raise _unreadable_int(name[prefix_length:], len(text), "", "") from None
            logger.debug("%s is not JSON; keeping it as a string", name)
            parameters[name[prefix_length:]] = text
    return parameters


def _same_value(old: Any, new: Any) -> bool:
    if old is new:
        return True
    if old != new:
        return False
    if type(old) is type(new) and type(old) in _SCALARS:
        return True
    # Python says 1 == True == 1.0 and [1] == [True]; JSON does not, so compare the text.
    try:
        return json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True)
    except (TypeError, ValueError):
        return True


def changed_parameters(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``after`` that are new or differ from ``before``.

    Keys missing from ``after`` are not reported: a parameter cannot be deleted.
    """
    return {
        key: value
        for key, value in after.items()
        if key not in before or not _same_value(before[key], value)
    }


def changed_in_environment(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, Any]:
    """The parameters whose ``MAGNUS_PRM_*`` text in ``after`` is new or differs from ``before``.

    Texts are compared before anything is decoded: a task that leaves a large parameter alone
    (a map's iterated list, seen by every element) costs a string comparison, not a decode and
    an encode of the whole value. Entries of either mapping without the prefix are ignored.
    """
    changed = {
        name: text
        for name, text in after.items()
        if name.startswith(PARAMETER_PREFIX) and before.get(name) != text
    }
    if not changed:
        return {}
    previous = {name: before[name] for name in changed if name in before}
    return changed_parameters(from_environment(previous), from_environment(changed))


# ------------------------------------------------------------------------------ run start


def load_parameters_file(path: str | Path) -> dict[str, Any]:
    """The parameters in a YAML file whose top level maps parameter names to values.

    An empty file holds no parameters. Raises ``ParameterError`` naming the file when it
    cannot be read or is not valid YAML (``magnus.yaml_reader``), is not a mapping, or has a
    key that cannot name a parameter or a value that cannot travel as JSON (the key is named).
    """
    from magnus.yaml_reader import read_yaml

    file = Path(path)
    data = read_yaml(file, "parameters file", ParameterError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(
            f"The parameters file {file} must map parameter names to values at its top "
            f"level, but it holds a {type(data).__name__}"
        )
    for key in data:
        if not isinstance(key, str):
            raise ParameterError(
                f"The parameters file {file} has the key {key!r} ({type(key).__name__}); "
                f"parameter names must be strings (quote it)"
            )
        if not is_parameter_name(key):
            raise ParameterError(
                f"The parameters file {file} has the key {key!r}, which cannot name a "
                f"parameter: {PARAMETER_NAME_RULE}"
            )
        try:  # refused here, before a run exists, rather than when the run log records it
            _jsonable_value(key, data[key], "", "")
        except ParameterError as exc:
            raise ParameterError(
                f"The parameters file {file} has the parameter {key!r}, which a run cannot "
                f"carry: {exc}"
            ) from None
    return data


def initial_parameters(
    parameters_file: str | Path | None, environ: Mapping[str, str]
) -> dict[str, Any]:
    """The parameters a run starts with: the file, overridden by ``MAGNUS_PRM_*`` variables."""
    parameters = load_parameters_file(parameters_file) if parameters_file else {}
    parameters.update(from_environment(environ))
    return parameters
