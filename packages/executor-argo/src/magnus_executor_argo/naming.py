"""Deterministic Argo names for magnus steps.

magnus 0.5 appended six random characters to every name, so two renders of one pipeline never
diffed cleanly. Here a name is derived from what it names (an internal name, a branch key) and
nothing else:

* lower-cased; every run of characters outside ``[a-z0-9]`` becomes one ``-`` (Kubernetes
  DNS-1123 label rules); the map placeholder segment becomes ``map``;
* a name starting with a digit, or equal to a word of Argo's ``depends`` expression language
  (``in``, ``not``, ...), is prefixed with ``step-`` — ``depends`` parses task names as
  identifiers;
* when two different things would get the same name (``a b`` and ``a_b``), or a name is longer
  than 63 characters, each of them gets ``-<6 hex digits>`` of the SHA-256 of what it names, so
  the name is stable whatever else the pipeline holds;
* reserved names (the entry point, ``fan-out``...) are never changed: what collides with them is.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Hashable, Iterable

from magnus.internal_names import MAP_PLACEHOLDER

MAX_LENGTH = 63
HASH_LENGTH = 6
_NOT_NAME = re.compile(r"[^a-z0-9]+")
# Words of expr (the language of Argo's ``depends`` and ``when``) that cannot be identifiers.
_EXPRESSION_WORDS = frozenset(
    {"and", "or", "not", "in", "matches", "contains", "true", "false", "nil", "let", "if", "else"}
)


def dns_label(text: str) -> str:
    """``text`` as a DNS-1123 label usable as an Argo template or task name (not yet unique)."""
    text = text.replace(MAP_PLACEHOLDER, "map")
    label = _NOT_NAME.sub("-", text.lower()).strip("-")
    if not label:
        return "step"
    if label[0].isdigit() or label in _EXPRESSION_WORDS:
        return f"step-{label}"
    return label


def short_hash(source: str, length: int = HASH_LENGTH) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``source``."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:length]


def _with_hash(label: str, source: str, length: int) -> str:
    suffix = short_hash(source, length)
    head = label[: MAX_LENGTH - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}"


def unique_names(
    items: Iterable[tuple[Hashable, str, str]], reserved: Iterable[str] = ()
) -> dict[Hashable, str]:
    """Give each item a unique name.

    Args:
        items: ``(key, label, source)``: ``label`` is the wanted name (a :func:`dns_label`),
            ``source`` the text it was derived from (what the disambiguating hash is taken of).
        reserved: names already taken, which items may not use.

    Returns:
        ``{key: name}``; keys with the same label and the same source get the same name.
    """
    entries = list(items)
    taken = set(reserved)
    sources_by_label: dict[str, set[str]] = {}
    for _, label, source in entries:
        sources_by_label.setdefault(label, set()).add(source)
    names: dict[Hashable, str] = {}
    chosen: dict[str, str] = {}  # source -> name, so one source always gets one name
    for key, label, source in entries:
        if source in chosen:
            names[key] = chosen[source]
            continue
        plain = (
            len(label) <= MAX_LENGTH and len(sources_by_label[label]) == 1 and label not in taken
        )
        name = label if plain else _with_hash(label, source, HASH_LENGTH)
        length = HASH_LENGTH
        while name in taken:  # a hash prefix shared by two sources: lengthen it
            length += 2
            name = _with_hash(label, source, length)
        taken.add(name)
        chosen[source] = name
        names[key] = name
    return names
