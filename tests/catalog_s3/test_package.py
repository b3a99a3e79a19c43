"""The magnus-catalog-s3 distribution: its dependency on core, its plugin, its settings."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from magnus_catalog_s3.catalog import S3Catalog
from magnus_catalog_s3.runlog import ChunkedS3RunLogStore
from packaging.requirements import Requirement
from packaging.version import Version

from magnus.exceptions import ConfigurationError
from magnus.plugins import get_plugins

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "packages" / "catalog-s3"


def _core_requirement() -> Requirement:
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    [requirement] = [
        Requirement(text)
        for text in project["dependencies"]
        if Requirement(text).name == "magnus-core"
    ]
    return requirement


def test_the_core_range_admits_the_core_of_this_checkout() -> None:
    core = tomllib.loads((REPO / "packages" / "core" / "pyproject.toml").read_text())
    version = Version(core["project"]["version"])

    requirement = _core_requirement()

    assert requirement.specifier.contains(version, prereleases=True), (
        f"magnus-catalog-s3 requires {requirement}, the checkout's core is {version}"
    )
    assert requirement.specifier.contains(metadata.version("magnus-core"), prereleases=True)


def test_the_plugin_registers_both_services() -> None:
    plugins = get_plugins()

    assert plugins.service_class("catalog", "s3") is S3Catalog
    assert plugins.service_class("run_log_store", "chunked-s3") is ChunkedS3RunLogStore
    assert plugins.services("catalog")["s3"].distribution == "magnus-catalog-s3"


def test_loading_the_plugin_does_not_import_boto3() -> None:
    code = (
        "import sys\n"
        "from magnus.plugins import get_plugins\n"
        "plugins = get_plugins()\n"
        "plugins.service_class('catalog', 's3')\n"
        "plugins.service_class('run_log_store', 'chunked-s3')\n"
        "S3 = plugins.service_class('catalog', 's3')\n"
        "S3(bucket='b').record()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("service", [S3Catalog, ChunkedS3RunLogStore])
def test_run_config_records_settings_and_nothing_secret(service: type) -> None:
    configured = service.from_config(
        {"bucket": "data", "prefix": "/team/x/", "endpoint_url": "http://minio:9000"}
    )

    record = configured.record()

    assert record["bucket"] == "data" and record["prefix"] == "team/x"
    assert record["endpoint_url"] == "http://minio:9000"
    assert {
        "addressing_style",
        "max_attempts",
        "retry_mode",
        "connect_timeout",
        "read_timeout",
        "multipart_threshold_mb",
        "multipart_chunksize_mb",
        "max_concurrency",
    } <= set(record)
    assert not [key for key in record if "secret" in key or "key" in key or "token" in key]
    assert not [key for key in record if key.startswith("_")]


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"bucket": "b", "aws_secret_access_key": "x"}, "unknown key 'aws_secret_access_key'"),
        ({"bucket": "b", "aws_access_key_id": "x"}, "unknown key 'aws_access_key_id'"),
        ({"bucket": "b", "profile": "dev"}, "unknown key 'profile'"),
        ({}, "missing required key 'bucket'"),
        ({"bucket": "b/with/prefix"}, "key 'bucket'"),
        ({"bucket": "b", "prefix": "a/../b"}, "key 'prefix'"),
        ({"bucket": "b", "prefix": "a//b"}, "key 'prefix'"),
        ({"bucket": "b", "max_concurrency": 0}, "key 'max_concurrency'"),
        ({"bucket": "b", "max_concurrency": 1000}, "key 'max_concurrency'"),
        ({"bucket": "b", "multipart_chunksize_mb": 1}, "key 'multipart_chunksize_mb'"),
        ({"bucket": "b", "addressing_style": "sideways"}, "key 'addressing_style'"),
        ({"bucket": "b", "retry_mode": "forever"}, "key 'retry_mode'"),
    ],
)
def test_bad_settings_are_refused_by_name(config: dict[str, object], fragment: str) -> None:
    for service in (S3Catalog, ChunkedS3RunLogStore):
        with pytest.raises(ConfigurationError, match=fragment) as caught:
            service.from_config(config)
        assert service.service_name in str(caught.value)
