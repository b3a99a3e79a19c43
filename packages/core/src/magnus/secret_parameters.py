"""Parameters that hold secrets: recorded as references to the secret, resolved when read.

A step may return a served secret (or a text containing one) as a parameter. Masking it would
hand the next step ``********`` instead of the value; recording it would write the secret into the
run log. So what the run log records is a *reference* to the secret, by the name it was served
under, and the step that reads the parameter gets the value from the secrets provider again:

* a value that is a secret: ``{"__magnus_secret__": "API_TOKEN"}``;
* a text that contains secrets: ``{"__magnus_secret__": ["Bearer ", "API_TOKEN", ""]}`` -- the
  parts alternate, literal text at even positions and secret names at odd ones.

References may sit anywhere in a parameter's value (inside lists and dicts). A secret that
cannot be referenced -- in a dict key, JSON-escaped inside a longer text, or served without a
name -- fails the step that produced it with an error naming the parameter; so does a reference
the secrets provider cannot resolve for the step that reads it. Nothing is ever passed on
altered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magnus.exceptions import ParameterError
from magnus.redaction import Redactor, get_redactor

if TYPE_CHECKING:
    from magnus.secrets import BaseSecrets

#: the only key of a dict that stands for a secret (or a text holding secrets)
REFERENCE_KEY = "__magnus_secret__"


class _Unreferenceable(Exception):
    """A secret in a place a reference cannot stand for."""


def as_references(parameters: dict[str, Any], strict: bool = True) -> dict[str, Any]:
    """``parameters`` with every served secret in their values replaced by a reference.

    ``strict`` (what a step passes on): a secret that cannot be referenced raises a
    ``ParameterError`` naming the parameter. Otherwise (what an attempt records of its inputs
    and outputs) such a secret is masked instead.
    """
    redactor = get_redactor()
    if not redactor.active:
        return parameters
    encoded = {}
    for name, value in parameters.items():
        try:
            encoded[name] = _encode(value, redactor)
        except _Unreferenceable as exc:
            if strict:
                raise ParameterError(
                    f"The parameter {name!r} holds a secret {exc}; magnus can pass a secret on "
                    "only as a whole value or inside a text, so the parameter was not passed on"
                ) from None
            encoded[name] = redactor.redact(_encode(value, redactor, mask_rest=True))
    return encoded


def _encode(value: Any, redactor: Redactor, mask_rest: bool = False) -> Any:
    if isinstance(value, str):
        parts = redactor.split_named(value)
        texts = [value] if parts is None else parts[0::2]
        if not mask_rest and any(redactor.redact_text(t) != t for t in texts):
            raise _Unreferenceable("in a form it cannot be named by (escaped, or served unnamed)")
        if parts is None:
            return value
        if len(parts) == 3 and parts[0] == parts[2] == "":
            return {REFERENCE_KEY: parts[1]}
        return {REFERENCE_KEY: parts}
    if isinstance(value, dict):
        encoded = {}
        for key, item in value.items():
            if isinstance(key, str) and redactor.redact_text(key) != key:
                if not mask_rest:
                    raise _Unreferenceable(f"in the key {redactor.redact_text(key)!r} of a dict")
                key = redactor.redact_text(key)
            encoded[key] = _encode(item, redactor, mask_rest)
        return encoded
    if isinstance(value, (list, tuple)):
        return [_encode(item, redactor, mask_rest) for item in value]
    return value


def is_reference(value: Any) -> bool:
    """Whether ``value`` is a reference to a secret (see the module docstring)."""
    return isinstance(value, dict) and len(value) == 1 and REFERENCE_KEY in value


def resolve_references(parameters: dict[str, Any], secrets: BaseSecrets) -> dict[str, Any]:
    """``parameters`` with every reference replaced by the secret's value, served again.

    Raises ``ParameterError`` naming the parameter when a reference cannot be resolved.
    """
    resolved = parameters
    for name, value in parameters.items():
        if not _holds_reference(value):
            continue
        if resolved is parameters:
            resolved = dict(parameters)
        try:
            resolved[name] = _decode(value, secrets)
        except Exception as exc:
            raise ParameterError(
                f"The parameter {name!r} refers to a secret that cannot be read: {exc}"
            ) from None
    return resolved


def _holds_reference(value: Any) -> bool:
    if isinstance(value, dict):
        return is_reference(value) or any(_holds_reference(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_reference(v) for v in value)
    return False


def _decode(value: Any, secrets: BaseSecrets) -> Any:
    if is_reference(value):
        target = value[REFERENCE_KEY]
        if isinstance(target, str):
            return secrets.get(target)
        if (
            isinstance(target, list)
            and len(target) % 2 == 1
            and all(isinstance(part, str) for part in target)
        ):
            return "".join(
                secrets.get(part) if index % 2 else part for index, part in enumerate(target)
            )
        raise ParameterError(f"{REFERENCE_KEY} must name a secret or list text and names")
    if isinstance(value, dict):
        return {key: _decode(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item, secrets) for item in value]
    return value
