"""Binding parameters to a python function's arguments, coerced to their annotations.

Parameters reach python functions as keyword arguments, coerced to each argument's annotation
with pydantic. Decisions taken where 0.5 behaved differently from its documentation (spec 7.4):

* unannotated and ``Any`` arguments receive the value as it is;
* generic annotations (``list[int]``, ``Optional[int]``, ``dict[str, int]``, unions,
  ``Annotated``) are honoured through pydantic's ``TypeAdapter`` in lax mode, which also accepts
  numbers for ``str`` arguments as 0.5's ``str(value)`` did;
* a pydantic-model argument validates its value with the model's own configuration, so extra
  keys are ignored unless the model says ``extra="forbid"`` (0.5 always ignored them);
* ``**kwargs`` receives every parameter not bound by name; ``*args`` is left empty.
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.errors import PydanticUserError
from pydantic_core import to_jsonable_python

from magnus.exceptions import ParameterError
from magnus.parameters.values import SCALARS, short_repr, where

logger = logging.getLogger(__name__)

_EMPTY = inspect.Parameter.empty


# ------------------------------------------------------------------------------ messages


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
        f"{where(step_name)}{subject}{of_function} expects {_type_name(annotation)} but got "
        f"{short_repr(value)} ({type(value).__name__}): {reason}"
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
                f"{where(step_name)}function {plan.func_name} has positional-only parameter "
                f"{slot.name!r} without a default; magnus passes parameters by name, so "
                f"remove the '/' from its signature or give {slot.name!r} a default"
            )

    bound: dict[str, Any] = {}
    for slot in plan.by_name:
        if slot.name in candidates:
            bound[slot.name] = cast_value(
                _own_copy(candidates[slot.name]),
                slot.annotation,
                slot.name,
                step_name=step_name,
                func_name=plan.func_name,
            )
        elif not slot.has_default:
            raise ParameterError(
                f"{where(step_name)}function {plan.func_name} needs parameter {slot.name!r} "
                f"but no parameter of that name is set"
            )

    if plan.var_keyword is not None:
        annotation = plan.var_keyword.annotation
        for key, value in candidates.items():
            if key not in bound:
                bound[key] = cast_value(
                    _own_copy(value), annotation, key, step_name=step_name, func_name=plan.func_name
                )
    return bound


def _own_copy(value: Any) -> Any:
    """A copy of a list or dict for the function: it may change it in place, and the values read
    from the run log are shared between steps (:mod:`magnus.parameters.sharing`). Those are JSON
    values; anything else was given by the caller and passes as it is."""
    return copy.deepcopy(value) if type(value) in (list, dict) else value


@dataclass(frozen=True)
class BindingForecast:
    """What binding a callable's arguments will meet, told before a run (``magnus validate``)."""

    #: arguments no parameter can ever bind (positional-only, without a default): messages
    impossible: tuple[str, ...]
    #: arguments without a default that nothing known yet provides: their names
    missing: tuple[str, ...]
    #: known values that do not fit their argument's annotation: messages
    unfit: tuple[str, ...]


def forecast_binding(
    func: Callable[..., Any],
    known: Mapping[str, Any],
    runtime_names: Iterable[str] = (),
    step_name: str = "",
) -> BindingForecast:
    """How :func:`bind_arguments` would fare with the parameters known before a run.

    ``known`` holds the values known now (the initial parameters); ``runtime_names`` the names
    that will have a value whose value is not known yet (map variables), which win over ``known``
    as in :func:`bind_arguments`. ``step_name`` prefixes the messages.
    """
    plan = _plan(func)
    later = set(runtime_names)
    impossible = tuple(
        f"{where(step_name)}function {plan.func_name} has positional-only parameter "
        f"{slot.name!r} without a default; magnus passes parameters by name"
        for slot in plan.positional_only
        if not slot.has_default
    )
    missing: list[str] = []
    unfit: list[str] = []
    for slot in plan.by_name:
        if slot.name in later:
            continue
        if slot.name not in known:
            if not slot.has_default:
                missing.append(slot.name)
            continue
        try:
            cast_value(
                known[slot.name],
                slot.annotation,
                slot.name,
                step_name=step_name,
                func_name=plan.func_name,
            )
        except ParameterError as exc:
            unfit.append(str(exc))
    return BindingForecast(impossible, tuple(missing), tuple(unfit))


# ------------------------------------------------------------------------------ serialising


def _jsonable_or_repr(value: Any) -> Any:
    if type(value) in SCALARS:
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
