"""Serializers for ``put_object``/``get_object``: how a Python object becomes a catalog file.

A serializer is registered through the ``register_object_serializers`` hook and chosen by name
(``pickle`` by default, ``json`` built in). The file is ``<name>.<suffix>``, so 0.5's
``<name>.pickle`` objects are read unchanged.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any, ClassVar


class BaseObjectSerializer:
    """Writes an object to a file and reads it back."""

    service_name: ClassVar[str] = ""
    service_type: ClassVar[str] = "object_serializer"
    #: the file name's suffix, without the dot
    suffix: ClassVar[str] = ""

    def dump(self, obj: Any, path: Path) -> None:
        """Write ``obj`` to ``path``."""
        raise NotImplementedError

    def load(self, path: Path) -> Any:
        """The object written to ``path``."""
        raise NotImplementedError


class PickleSerializer(BaseObjectSerializer):
    """Any picklable object; the reader must be able to import its classes."""

    service_name: ClassVar[str] = "pickle"
    suffix: ClassVar[str] = "pickle"

    def dump(self, obj: Any, path: Path) -> None:
        with path.open("wb") as handle:
            pickle.dump(obj, handle)

    def load(self, path: Path) -> Any:
        with path.open("rb") as handle:
            return pickle.load(handle)


class JsonSerializer(BaseObjectSerializer):
    """JSON-ready data (dicts, lists, strings, numbers); readable by anything."""

    service_name: ClassVar[str] = "json"
    suffix: ClassVar[str] = "json"

    def dump(self, obj: Any, path: Path) -> None:
        from pydantic_core import to_jsonable_python

        path.write_text(json.dumps(to_jsonable_python(obj), indent=2), encoding="utf-8")

    def load(self, path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8"))
