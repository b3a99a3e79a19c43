"""Contract suites for plugin authors (install ``magnus-core[testing]``).

Subclass a suite in your own tests and provide the fixture it names; you get the same tests that
magnus' built-in services pass::

    from magnus.testing import RunLogStoreContract

    class TestMyStore(RunLogStoreContract):
        @pytest.fixture
        def run_log_store(self, tmp_path):
            return MyStore(location=str(tmp_path))
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CatalogContract",
    "RunLogStoreContract",
    "SecretsContract",
    "TrackerContract",
    "count_storage_calls",
]


def __getattr__(name: str) -> Any:
    if name == "RunLogStoreContract":
        from magnus.testing.runlog_store import RunLogStoreContract

        return RunLogStoreContract
    if name == "count_storage_calls":
        from magnus.testing.runlog_store import count_storage_calls

        return count_storage_calls
    if name == "CatalogContract":
        from magnus.testing.catalog import CatalogContract

        return CatalogContract
    if name == "SecretsContract":
        from magnus.testing.secrets import SecretsContract

        return SecretsContract
    if name == "TrackerContract":
        from magnus.testing.tracker import TrackerContract

        return TrackerContract
    raise AttributeError(f"module 'magnus.testing' has no attribute {name!r}")
