"""Helpers of the Vault plugin's tests (fixtures are in conftest.py beside this file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests


def reader_policy(root: Any, prefix: str, mount: str = "secret", kv_version: int = 2) -> str:
    """A policy that may read every secret under ``prefix`` of ``mount``; returns its name."""
    name = f"read-{prefix}-{mount}"
    path = f"{mount}/data/{prefix}/*" if kv_version == 2 else f"{mount}/{prefix}/*"
    root.sys.create_or_update_policy(
        name=name, policy=f'path "{path}" {{ capabilities = ["read"] }}'
    )
    return name


def ensure_kv1(root: Any, mount: str = "kv1") -> str:
    """A KV v1 engine at ``mount`` on the server (enabled once per server)."""
    if f"{mount}/" not in root.sys.list_mounted_secrets_engines()["data"]:
        root.sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    return mount


@dataclass
class AppRole:
    """A role on the server: its ids, and the environment variables they were put in."""

    name: str
    role_id: str
    secret_id: str = field(repr=False)


@dataclass
class Exchange:
    """One HTTP request the process sent, and the answer."""

    method: str
    path: str
    status: int
    response: requests.Response = field(repr=False)


class RequestLog:
    """Every HTTP request any ``requests`` session of this process sends, in order."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return sum(
            1
            for e in self.exchanges
            if (method is None or e.method == method) and (path is None or e.path == path)
        )

    def paths(self) -> list[str]:
        return [f"{e.method} {e.path}" for e in self.exchanges]

    def clear(self) -> None:
        self.exchanges.clear()
