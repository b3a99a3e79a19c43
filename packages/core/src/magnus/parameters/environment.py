"""Parameters across process boundaries: ``MAGNUS_PRM_<key>`` variables holding JSON text.

Unlike 0.5, keys keep their case everywhere. What a task changed is found by comparing the
variables before and after it ran.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from magnus.parameters.sharing import SharedValueMemo
from magnus.parameters.values import SCALARS, check_name, jsonable_value, unreadable_int

logger = logging.getLogger(__name__)

#: the prefix of the environment variables that carry parameters
PARAMETER_PREFIX = "MAGNUS_PRM_"


# The text of each shared value exported: a map's iterated list is written once, not per element.
_exported = SharedValueMemo[str]()


def to_environment(parameters: Mapping[str, Any]) -> dict[str, str]:
    """``MAGNUS_PRM_<key>`` = JSON text for every parameter, keys keeping their case."""
    environment: dict[str, str] = {}
    for key, value in parameters.items():
        text = _exported.get(key, value)
        if text is None:
            check_name(key, "", "")
            text = json.dumps(jsonable_value(key, value, "", ""))
            _exported.remember(key, value, text)
        environment[PARAMETER_PREFIX + key] = text
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
                raise unreadable_int(name[prefix_length:], len(text), "", "") from None
            logger.debug("%s is not JSON; keeping it as a string", name)
            parameters[name[prefix_length:]] = text
    return parameters


def _same_value(old: Any, new: Any) -> bool:
    if old is new:
        return True
    if old != new:
        return False
    if type(old) is type(new) and type(old) in SCALARS:
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
