"""Reading the YAML files magnus is given: pipelines, nested dag files, configurations, parameters.

One reader for all of them, so that each refuses the same things with one line naming the file:

* a file that cannot be read, or is not UTF-8 text (a binary file given by mistake);
* text that is not valid YAML, with the line and column of the problem;
* a key written twice in one mapping, with both lines: YAML parsers silently keep the last one,
  which hides, say, two steps of the same name;
* aliases that expand to far more data than the file holds (a "billion laughs" file): loading
  shares the aliased values, but writing them out (a run log records parameters as JSON) would
  exhaust memory and disk;
* a value that contains itself through an alias, which no JSON record can hold.

libyaml's parser is used when PyYAML was built with it, and values are built straight from its
nodes where they are plain mappings, lists and scalars: a large pipeline is read several times
faster.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from magnus.exceptions import ConfigurationError, MagnusError

#: The most a file's aliases may expand to (characters of text plus one per value), unless the
#: file itself is larger than half of it: a document without aliases always fits.
MAX_EXPANDED_SIZE = 10_000_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


@functools.cache
def _loader() -> type:
    """The safe loader of PyYAML (libyaml's when available), refusing duplicate keys."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class StrictSafeLoader(base):  # type: ignore[valid-type,misc]
        def __init__(self, stream: Any) -> None:
            super().__init__(stream)
            # A plain scalar's tag depends on its text alone, and a pipeline repeats its texts
            # (every step's type, most commands, each name as a key and as a next step).
            self._tags: dict[str, str] = {}

        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            if kind is yaml.ScalarNode and implicit[0] and not self.yaml_path_resolvers:
                tag = self._tags.get(value)
                if tag is None:
                    tag = self._tags[value] = super().resolve(kind, value, implicit)
                return tag
            return super().resolve(kind, value, implicit)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if not isinstance(node, yaml.MappingNode):
                return super().construct_mapping(node, deep=deep)
            # Merging rewrites the node's keys: look at the keys as written before it does.
            if any(key_node.tag == _MERGE_TAG for key_node, _ in node.value):
                _refuse_duplicate_keys(self, node, deep)
                return super().construct_mapping(node, deep=deep)
            mapping = super().construct_mapping(node, deep=deep)
            if len(mapping) < len(node.value):  # only then can a key be there twice
                _refuse_duplicate_keys(self, node, deep)
            return mapping

    def construct_text(loader: Any, node: Any) -> Any:
        # Most of a pipeline is text: its scalar node holds the value as it is.
        if isinstance(node, yaml.ScalarNode):
            return node.value
        return loader.construct_scalar(node)

    StrictSafeLoader.add_constructor("tag:yaml.org,2002:str", construct_text)
    return StrictSafeLoader


_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"


class _NeedsConstructor(Exception):
    """The document holds what only PyYAML's constructor builds (merge keys, other tags)."""


def _load(loader: Any) -> Any:
    """The document ``loader`` reads: built here for plain mappings, lists and scalars (a
    pipeline, a configuration), by PyYAML's constructor for anything else.

    PyYAML's constructor goes through several Python calls per value; building the values
    straight from the composed nodes reads a pipeline of 10,000 steps in half the time.
    """
    import yaml

    # The lists and mappings made so far, by node: an alias gives the very value of its
    # anchor, as PyYAML does.
    built: dict[int, Any] = {}

    def build(node: Any) -> Any:
        tag = node.tag
        if isinstance(node, yaml.ScalarNode):
            if tag == _STR_TAG:
                return node.value
            if tag.startswith("tag:yaml.org,2002:") and tag != "tag:yaml.org,2002:value":
                return loader.construct_object(node, deep=True)
            raise _NeedsConstructor
        known = built.get(id(node))
        if known is not None:
            return known
        if isinstance(node, yaml.SequenceNode) and tag == _SEQ_TAG:
            items: list[Any] = []
            built[id(node)] = items
            items.extend(build(child) for child in node.value)
            return items
        if not isinstance(node, yaml.MappingNode) or tag != _MAP_TAG:
            raise _NeedsConstructor
        mapping: dict[Any, Any] = {}
        built[id(node)] = mapping
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                raise _NeedsConstructor
            key = build(key_node)
            try:
                twice = key in mapping
            except TypeError:  # an unhashable key: PyYAML's constructor reports it
                raise _NeedsConstructor from None
            if twice:
                _refuse_duplicate_keys(loader, node, True)
            mapping[key] = build(value_node)
        return mapping

    node = loader.get_single_node()
    if node is None:
        return None
    try:
        return build(node)
    except _NeedsConstructor:
        return loader.construct_document(node)


def _refuse_duplicate_keys(loader: Any, node: Any, deep: bool) -> None:
    """Raise a YAML error at the second occurrence of a key of ``node``.

    Keys brought in by a merge (``<<: *defaults``) may be overridden; only keys written in the
    mapping itself count. Each key is constructed once: the loader keeps what it constructed.
    """
    from yaml.constructor import ConstructorError

    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.setdefault(key, key_node)
        except TypeError:  # an unhashable key: the loader itself reports it
            continue
        if first is not key_node:
            raise ConstructorError(
                None,
                None,
                f"the key {key!r} appears twice in one mapping "
                f"(first at line {first.start_mark.line + 1}); YAML would keep only the last",
                key_node.start_mark,
            )


def read_yaml(path: str | Path, what: str, error: type[MagnusError] = ConfigurationError) -> Any:
    """Load the YAML file at ``path``; every problem raises ``error`` in one line naming the file.

    ``what`` says what the file is for the message ("pipeline file", "parameters file", ...).
    """
    import yaml

    where = f"The {what} {str(path)!r}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{where} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start}): is it the right file?"
        ) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL character in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error(f"Cannot read the {what} {str(path)!r}: {reason}") from None
    try:
        loader = _loader()(text)
        try:
            document = _load(loader)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{where} is not valid YAML{line}: {problem}") from None
    except RecursionError:
        raise error(f"{where} nests its values too deeply to be read") from None
    except (ValueError, OverflowError) as exc:  # a value YAML recognises but cannot build
        raise error(f"{where} holds a value that cannot be read: {exc}") from None
    if "&" in text and "*" in text:  # only an anchor and its aliases can share values
        _check_expansion(document, max(MAX_EXPANDED_SIZE, 2 * len(text) + 1), where, error)
    return document


def _scalar_size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes)) else 1


def _check_expansion(document: Any, limit: int, where: str, error: type[MagnusError]) -> None:
    """Refuse a document whose values, written out in full, would be larger than ``limit``.

    Aliased values are shared, so each distinct list or mapping is sized once, from its
    children (an iterative post-order walk: a deeply nested document cannot overflow the stack).
    """
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    stack: list[tuple[Any, bool]] = [(document, False)]
    while stack:
        value, children_done = stack.pop()
        if not isinstance(value, (dict, list)):
            continue
        key = id(value)
        items = list(value.values()) if isinstance(value, dict) else value
        if not children_done:
            if key in sizes:
                continue
            if key in in_progress:
                raise error(f"{where} has a value that contains itself through an alias")
            in_progress.add(key)
            stack.append((value, True))
            for child in items:
                if isinstance(child, (dict, list)):
                    if id(child) in in_progress:
                        raise error(f"{where} has a value that contains itself through an alias")
                    if id(child) not in sizes:
                        stack.append((child, False))
            continue
        total = 1
        if isinstance(value, dict):
            total += sum(_scalar_size(k) for k in value)
        for child in items:
            total += sizes[id(child)] if isinstance(child, (dict, list)) else _scalar_size(child)
        if total > limit:
            raise error(
                f"{where} expands through its YAML aliases to more than {limit:,} characters "
                "and values; write the values out instead of aliasing them"
            )
        in_progress.discard(key)
        sizes[key] = total
