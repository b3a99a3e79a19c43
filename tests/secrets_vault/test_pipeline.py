"""Pipelines through the command line reading from a real Vault: masked everywhere, read once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures.vault_server import VaultServer
from helpers import show_run
from secrets_vault.support import reader_policy

pytestmark = pytest.mark.e2e

SECRET = "pa55-vault-xyzzy"

STEPS = """
import sys

import magnus


def leak():
    secret = magnus.get_secret("api_token")
    print(f"the token is {secret}")
    print(f"split {secret[:6]}", end="")
    print(f"{secret[6:]} done", file=sys.stderr)
    magnus.track_this(token=secret, length=len(secret))
    shared = magnus.get_secret("SHARED_PATH#password")
    return {"leaked": secret, "nested": {"inside": [f"x{secret}y"]}, "shared": shared}


def explode():
    raise ValueError(f"cannot use {magnus.get_secret('api_token')}")


def missing():
    return magnus.get_secret("not_there")
"""

PIPELINE = """
dag:
  start_at: leak
  steps:
    leak: {type: task, command: steps.leak, next: explode}
    explode: {type: task, command: steps.explode, on_failure: missing, next: success}
    missing: {type: task, command: steps.missing, next: success}
    success: {type: success}
    fail: {type: fail}
"""


def _everything_written(project: Path) -> str:
    texts = []
    for folder in (project / ".run_log_store", project / ".catalog"):
        for path in folder.rglob("*"):
            if path.is_file():
                texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


def _vault_config(project: Path, server: VaultServer, path: str) -> None:
    (project / "c.yaml").write_text(
        "secrets:\n"
        "  type: vault\n"
        "  config:\n"
        f"    url: {server.url}\n"
        "    mount_point: secret\n"
        f"    path: {path}\n"
        "    kv_version: 2\n"
        "    auth: {method: token, token_env: VAULT_TOKEN}\n"
    )


def test_a_vault_secret_reaches_the_task_and_is_masked_everywhere(
    project: Path,
    run_magnus: Callable[..., Any],
    vault_server: VaultServer,
    root: Any,
    vault_prefix: str,
    secret_path: str,
) -> None:
    shared_path = f"{vault_prefix}/shared"
    root.secrets.kv.v2.create_or_update_secret(path=secret_path, secret={"api_token": SECRET})
    root.secrets.kv.v2.create_or_update_secret(
        path=shared_path, secret={"password": "shared-secret-0042"}
    )
    token = root.auth.token.create(policies=[reader_policy(root, vault_prefix)], ttl="5m")["auth"][
        "client_token"
    ]
    (project / "steps.py").write_text(STEPS.replace("SHARED_PATH", shared_path))
    (project / "p.yaml").write_text(PIPELINE)
    _vault_config(project, vault_server, secret_path)

    result = run_magnus(
        "execute",
        "-f",
        "p.yaml",
        "-c",
        "c.yaml",
        "--run-id",
        "vault-run",
        cwd=project,
        env={"VAULT_TOKEN": token},
    )

    assert result.returncode == 1, result.stdout + result.stderr
    console = result.stdout + result.stderr
    written = _everything_written(project)
    for text in (console, written):
        assert SECRET not in text
        assert "shared-secret-0042" not in text
        assert token not in text
    assert SECRET[:6] not in written.replace("********", "")  # no half-secret either

    log = show_run("vault-run", project, "-c", "c.yaml")
    leak = log["steps"]["leak"]
    assert leak["status"] == "SUCCESS"
    # a returned secret is recorded as a reference to it, resolved again by the step reading it
    assert log["parameters"]["leaked"] == {"__magnus_secret__": "api_token"}
    assert log["parameters"]["shared"] == {"__magnus_secret__": f"{shared_path}#password"}
    assert log["parameters"]["nested"] == {
        "inside": [{"__magnus_secret__": ["x", "api_token", "y"]}]
    }
    assert leak["user_defined_metrics"] == {"token": "********", "length": len(SECRET)}
    explode = log["steps"]["explode"]["attempts"][0]
    assert explode["message"] == "ValueError: cannot use ********"
    missing = log["steps"]["missing"]
    assert missing["status"] == "FAIL"
    message = missing["attempts"][0]["message"]
    assert "'not_there'" in message
    assert "vault KV v2 mount 'secret'" in message
    assert f"path {secret_path!r} has no key 'not_there'" in message
    execution_log = (project / ".catalog" / "vault-run" / "leak.execution.log").read_text()
    assert "the token is ********" in execution_log
    assert "split ******** done" in execution_log
    secrets_handler = log["run_config"]["secrets_handler"]
    assert secrets_handler["service_name"] == "vault"
    assert secrets_handler["path"] == secret_path
    assert secrets_handler["auth"]["token_env"] == "VAULT_TOKEN"


MAP_STEPS = """
import magnus


def make():
    return {"items": list(range(ELEMENTS))}


def use(item):
    assert magnus.get_secret("db") == "map-db-password"
    assert magnus.get_secret(f"key_{item}") == f"value-{item:03d}"
"""

MAP_PIPELINE = """
dag:
  start_at: make
  steps:
    make: {type: task, command: steps.make, next: each}
    each:
      type: map
      iterate_on: items
      iterate_as: item
      next: success
      branch:
        start_at: use
        steps:
          use: {type: task, command: steps.use, next: success}
          success: {type: success}
          fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
"""

# OpenBao enables audit devices from its configuration only, never through the API.
AUDIT_TO_FILE = """
audit "file" "counting" {
  options {
    file_path = "AUDIT_LOG"
  }
}
"""


def test_a_map_run_in_one_process_reads_the_vault_path_once(
    project: Path,
    run_magnus: Callable[..., Any],
    vault_server_factory: Callable[..., VaultServer],
    tmp_path: Path,
) -> None:
    # Counted by the server itself: its audit log records every request it is sent.
    audit_log = tmp_path / "audit.log"
    server = vault_server_factory(config=AUDIT_TO_FILE.replace("AUDIT_LOG", str(audit_log)))
    elements = 40
    server.client().secrets.kv.v2.create_or_update_secret(
        path="team/project",
        secret={"db": "map-db-password", **{f"key_{i}": f"value-{i:03d}" for i in range(elements)}},
    )
    (project / "steps.py").write_text(MAP_STEPS.replace("ELEMENTS", str(elements)))
    (project / "p.yaml").write_text(MAP_PIPELINE)
    _vault_config(project, server, "team/project")

    result = run_magnus(
        "execute",
        "-f",
        "p.yaml",
        "-c",
        "c.yaml",
        "--run-id",
        "vault-map",
        cwd=project,
        env={"VAULT_TOKEN": server.root_token},
    )

    assert result.returncode == 0, result.stdout + result.stderr
    log = show_run("vault-map", project, "-c", "c.yaml")
    assert log["status"] == "SUCCESS"
    requests = [
        entry["request"]
        for entry in map(json.loads, audit_log.read_text().splitlines())
        if entry["type"] == "request"
    ]
    reads = [r for r in requests if r["path"] == "secret/data/team/project"]
    assert [r["operation"] for r in reads] == ["create", "read"]  # our setup's write, one read
    assert sum(r["path"] == "auth/token/lookup-self" for r in requests) == 1
