"""The hook implementations magnus loads through the ``magnus`` entry point ``s3``.

Classes are imported inside the hooks so that loading the plugin costs nothing until a
configuration asks for ``type: s3`` or ``type: chunked-s3``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from magnus import hookimpl

if TYPE_CHECKING:
    from magnus.catalog import BaseCatalog
    from magnus.runlog.base import BaseRunLogStore


@hookimpl
def register_catalogs() -> list[type[BaseCatalog]]:
    """The ``s3`` catalog."""
    from magnus_catalog_s3.catalog import S3Catalog

    return [S3Catalog]


@hookimpl
def register_run_log_stores() -> list[type[BaseRunLogStore]]:
    """The ``chunked-s3`` run-log store."""
    from magnus_catalog_s3.runlog import ChunkedS3RunLogStore

    return [ChunkedS3RunLogStore]
