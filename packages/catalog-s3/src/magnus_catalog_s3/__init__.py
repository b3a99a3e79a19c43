"""magnus-catalog-s3: the ``s3`` catalog and the ``chunked-s3`` run-log store for magnus.

Both are registered through the ``magnus`` entry-point group (see :mod:`magnus_catalog_s3.plugin`);
nothing here imports boto3 until a service talks to S3.
"""

from __future__ import annotations

__version__ = "0.2.0"
