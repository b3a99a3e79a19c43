"""What a plugin's service returns is checked against the contract it implements.

magnus trusts the values its services return: a run-log store's ``RunLog``, a catalog's
``DataCatalog`` records, a secret's ``str``. A third-party service that returns something else
(``None`` from ``put_file``, a dict from ``get_run_log_by_id``) would otherwise fail far from
its cause, or be written into the run log. So when a plugin's service class is registered, each
contract method it implements is wrapped once: the value it returns must match the return
annotation the contract (the service family's base class, e.g. ``BaseCatalog``) declares, or a
``PluginError`` names the distribution, the class and the method. magnus' own services are not
wrapped, and annotations this check cannot express are not enforced.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

from magnus.exceptions import PluginError
from magnus.services import BaseService

_GUARDED = "__magnus_contract_guarded__"
_CORE_PACKAGE = "magnus"


def contract_of(cls: type) -> type | None:
    """The service family's base class ``cls`` implements (the one that sets ``service_type``)."""
    for klass in reversed(cls.__mro__):
        if (
            klass is not BaseService
            and issubclass(klass, BaseService)
            and klass.__dict__.get("service_type")
        ):
            return klass
    return None


def guard_service_class(cls: type, distribution: str) -> None:
    """Check what ``cls`` returns from the contract methods it implements (at most once)."""
    contract = contract_of(cls)
    if contract is None or cls.__dict__.get(_GUARDED):
        return
    for name, declared in _contract_methods(contract).items():
        owner = next(k for k in cls.__mro__ if name in k.__dict__)
        if _is_core(owner):
            continue  # magnus' own implementation: trusted
        method = owner.__dict__[name]
        if not inspect.isfunction(method) or getattr(method, _GUARDED, False):
            continue  # not a plain method, or checked already (inherited from a guarded class)
        where = f"{distribution}: {cls.__qualname__}.{name}()"
        setattr(cls, name, _checked(method, declared, where))
    setattr(cls, _GUARDED, True)


def _is_core(cls: type) -> bool:
    module = cls.__module__ or ""
    return module == _CORE_PACKAGE or module.startswith(_CORE_PACKAGE + ".")


@functools.cache
def _contract_methods(contract: type) -> dict[str, Any]:
    """``{name: return annotation}`` of the contract's methods whose returns can be checked."""
    methods: dict[str, Any] = {}
    for name, function in vars(contract).items():
        if name.startswith("__") or not inspect.isfunction(function):
            continue
        try:
            declared = typing.get_type_hints(function).get("return", Any)
        except Exception:  # an annotation only a type checker resolves: not enforced
            continue
        if declared is not Any and declared is not type(None):
            methods[name] = declared
    return methods


def _checked(method: Callable[..., Any], declared: Any, where: str) -> Callable[..., Any]:
    @functools.wraps(method)
    def checked(*args: Any, **kwargs: Any) -> Any:
        value = method(*args, **kwargs)
        if not conforms(value, declared):
            raise PluginError(
                f"{where} returned {_describe(value)}, but its contract says {_type_name(declared)}"
            )
        return value

    setattr(checked, _GUARDED, True)
    return checked


def conforms(value: Any, declared: Any) -> bool:
    """Whether ``value`` matches the annotation ``declared`` (what cannot be checked passes)."""
    if declared is Any or declared is object:
        return True
    if declared is None or declared is type(None):
        return value is None
    origin = typing.get_origin(declared)
    arguments = typing.get_args(declared)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, argument) for argument in arguments)
    if origin is None:
        if declared is float:
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        return isinstance(value, declared) if isinstance(declared, type) else True
    if not isinstance(origin, type):
        return True  # Literal, Annotated, ...: not enforced
    if not isinstance(value, origin):
        return False
    if isinstance(value, list) and arguments:
        return all(conforms(item, arguments[0]) for item in value)
    if isinstance(value, dict) and len(arguments) == 2:
        key_type, value_type = arguments
        return all(conforms(k, key_type) and conforms(v, value_type) for k, v in value.items())
    return True


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    name = type(value).__qualname__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _type_name(declared: Any) -> str:
    if isinstance(declared, type) and not typing.get_args(declared):
        return declared.__qualname__
    return repr(declared).replace("typing.", "").replace("magnus.runlog.models.", "")
