"""Code identity against real temporary git repositories, and the environment identity."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

from magnus.identity import code_diff, code_identity, environment_identity

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")


@pytest.fixture(autouse=True)
def _isolated_git(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The developer's ~/.gitconfig (default branch, hooks, diff tools) must not leak in.
    empty = tmp_path_factory.mktemp("gitconfig") / "config"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return result.stdout.strip()


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "commit.gpgsign", "false")
    for name, content in (files or {"app.py": "print('hi')\n"}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "repo",
        {"app.py": "print('hi')\n", "pkg/mod.py": "X = 1\n", ".gitignore": "*.log\n"},
    )


def test_clean_tree_is_dependable(repo: Path) -> None:
    identity = code_identity(repo)
    assert identity.code_identifier == git(repo, "rev-parse", "HEAD")
    assert identity.code_identifier_type == "git"
    assert identity.code_identifier_dependable is True
    assert identity.code_identifier_message == ""


def test_modified_tracked_file(repo: Path) -> None:
    (repo / "app.py").write_text("print('changed')\n")
    identity = code_identity(repo)
    assert identity.code_identifier == git(repo, "rev-parse", "HEAD")
    assert identity.code_identifier_dependable is False
    assert identity.code_identifier_message == "changes found in app.py"


def test_staged_change(repo: Path) -> None:
    (repo / "pkg" / "mod.py").write_text("X = 2\n")
    git(repo, "add", "pkg/mod.py")
    identity = code_identity(repo)
    assert identity.code_identifier_dependable is False
    assert "pkg/mod.py" in (identity.code_identifier_message or "")


def test_deleted_and_renamed_files(repo: Path) -> None:
    git(repo, "mv", "app.py", "main.py")
    (repo / "pkg" / "mod.py").unlink()
    identity = code_identity(repo)
    assert identity.code_identifier_dependable is False
    # The rename's source path follows it in the -z output and must not be listed.
    assert identity.code_identifier_message == "changes found in main.py, pkg/mod.py"


def test_untracked_file_counts(repo: Path) -> None:
    (repo / "pkg" / "new file.py").write_text("")
    identity = code_identity(repo)
    assert identity.code_identifier_dependable is False
    assert identity.code_identifier_message == "changes found in pkg/new file.py"


def test_untracked_files_in_ignored_folders_do_not_count(repo: Path) -> None:
    (repo / ".catalog" / "run-1").mkdir(parents=True)
    (repo / ".catalog" / "run-1" / "data.csv").write_text("a\n")
    (repo / ".run_log_store").mkdir()
    (repo / ".run_log_store" / "run-1.json").write_text("{}")
    assert code_identity(repo).code_identifier_dependable is False
    identity = code_identity(repo, ignore=[".catalog", ".run_log_store"])
    assert identity.code_identifier_dependable is True
    assert identity.code_identifier_message == ""


def test_ignored_folder_is_relative_to_path_and_may_be_absolute(repo: Path) -> None:
    (repo / "pkg" / ".catalog").mkdir()
    (repo / "pkg" / ".catalog" / "x").write_text("")
    assert code_identity(repo / "pkg", ignore=[".catalog"]).code_identifier_dependable is True
    assert code_identity(repo, ignore=[".catalog"]).code_identifier_dependable is False
    absolute = str(repo / "pkg" / ".catalog")
    assert code_identity(repo, ignore=[absolute]).code_identifier_dependable is True


def test_ignore_does_not_hide_a_similarly_named_sibling(repo: Path) -> None:
    (repo / ".catalog-old").mkdir()
    (repo / ".catalog-old" / "x").write_text("")
    assert code_identity(repo, ignore=[".catalog"]).code_identifier_dependable is False


def test_gitignored_file_does_not_count(repo: Path) -> None:
    (repo / "debug.log").write_text("noise\n")
    assert code_identity(repo).code_identifier_dependable is True


def test_many_changes_are_capped(repo: Path) -> None:
    for index in range(25):
        (repo / f"new_{index:02d}.txt").write_text("")
    message = code_identity(repo).code_identifier_message or ""
    assert message.startswith("changes found in new_00.txt, ")
    assert message.endswith(" and 5 more")
    assert message.count(", ") == 19


def test_subdirectory_finds_the_repository(repo: Path) -> None:
    identity = code_identity(repo / "pkg")
    assert identity.code_identifier == git(repo, "rev-parse", "HEAD")
    assert identity.code_identifier_dependable is True


def test_default_path_is_the_working_directory(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo / "pkg")
    assert code_identity().code_identifier == git(repo, "rev-parse", "HEAD")


def test_no_remote_means_no_url(repo: Path) -> None:
    assert code_identity(repo).code_identifier_url is None


def test_origin_remote_url(repo: Path) -> None:
    git(repo, "remote", "add", "upstream", "https://example.com/upstream.git")
    git(repo, "remote", "add", "origin", "git@example.com:team/project.git")
    assert code_identity(repo).code_identifier_url == "git@example.com:team/project.git"


def test_first_remote_when_no_origin(repo: Path) -> None:
    git(repo, "remote", "add", "upstream", "https://example.com/upstream.git")
    assert code_identity(repo).code_identifier_url == "https://example.com/upstream.git"


def test_credentials_are_stripped_from_the_url(repo: Path) -> None:
    git(repo, "remote", "add", "origin", "https://user:s3cret@example.com/team/project.git")
    identity = code_identity(repo)
    assert identity.code_identifier_url == "https://example.com/team/project.git"


def _inside_git(path: Path) -> bool:
    probe = subprocess.run(
        ["git", "rev-parse", "--git-dir"], cwd=path, capture_output=True, text=True
    )
    return probe.returncode == 0


def test_outside_git(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    if _inside_git(plain):
        pytest.skip("the temporary folder is inside a git repository")
    identity = code_identity(plain)
    assert identity.code_identifier is None
    assert identity.code_identifier_type == "git"
    assert identity.code_identifier_dependable is False
    assert identity.code_identifier_url is None
    assert "not inside a git repository" in (identity.code_identifier_message or "")
    assert code_diff(plain) is None
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_missing_path_does_not_raise(tmp_path: Path) -> None:
    identity = code_identity(tmp_path / "does" / "not" / "exist")
    assert identity.code_identifier is None
    assert identity.code_identifier_dependable is False


def test_repository_without_commits(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    (empty / "file.txt").write_text("x")
    identity = code_identity(empty)
    assert identity.code_identifier is None
    assert identity.code_identifier_dependable is False
    assert "no commits" in (identity.code_identifier_message or "")
    assert code_diff(empty) is None


def test_detached_head(repo: Path) -> None:
    sha = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "--detach")
    assert code_identity(repo).code_identifier == sha


def test_code_diff_of_clean_tree_is_none(repo: Path) -> None:
    assert code_diff(repo) is None


def test_code_diff_contains_the_change_and_lists_untracked(repo: Path) -> None:
    (repo / "app.py").write_text("print('changed')\n")
    (repo / "notes.txt").write_text("draft\n")
    (repo / ".catalog").mkdir()
    (repo / ".catalog" / "out").write_text("")
    diff = code_diff(repo, ignore=[".catalog"])
    assert diff is not None
    assert "+print('changed')" in diff
    assert "-print('hi')" in diff
    assert "#   notes.txt\n" in diff
    assert ".catalog" not in diff


def test_code_diff_with_only_untracked_files(repo: Path) -> None:
    (repo / "notes.txt").write_text("draft\n")
    diff = code_diff(repo)
    assert diff is not None and "notes.txt" in diff and "diff --git" not in diff


def test_code_diff_applies_to_a_fresh_checkout(repo: Path, tmp_path: Path) -> None:
    (repo / "app.py").write_text("print('changed')\n")
    (repo / "blob.bin").write_bytes(bytes(range(256)))
    git(repo, "add", "blob.bin")
    (repo / "pkg" / "mod.py").unlink()
    (repo / "stray.txt").write_text("not included\n")
    diff = code_diff(repo)
    assert diff is not None and "GIT binary patch" in diff

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    patch = tmp_path / "change.patch"
    patch.write_text(diff, encoding="utf-8", errors="surrogateescape")
    git(clone, "apply", str(patch))
    assert (clone / "app.py").read_text() == "print('changed')\n"
    assert (clone / "blob.bin").read_bytes() == bytes(range(256))
    assert not (clone / "pkg" / "mod.py").exists()


def test_user_diff_configuration_does_not_change_the_diff(repo: Path) -> None:
    git(repo, "config", "diff.noprefix", "true")
    git(repo, "config", "color.ui", "always")
    (repo / "app.py").write_text("print('changed')\n")
    diff = code_diff(repo) or ""
    assert "diff --git a/app.py b/app.py" in diff
    assert "\x1b[" not in diff


def test_git_missing_is_reported_not_raised(repo: Path) -> None:
    script = (
        "import json; from magnus.identity import code_identity; "
        "print(code_identity('.').model_dump_json())"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_PYTHON")}
    env["PATH"] = str(repo / "no-such-bin")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=repo, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert '"code_identifier":null' in result.stdout
    assert "git is not available" in result.stdout


def test_importing_identity_does_not_import_git() -> None:
    script = (
        "import sys, magnus, magnus.identity; "
        "print(any(name == 'git' or name.startswith('git.') for name in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_environment_identity() -> None:
    identity = environment_identity()
    assert identity["python"] == ".".join(str(part) for part in sys.version_info[:3])
    assert identity["implementation"]
    assert identity["platform"]
    assert identity["executable"] == sys.executable
    distributions = identity["distributions"]
    assert f"pydantic=={pydantic.VERSION}" in distributions
    names = [entry.partition("==")[0] for entry in distributions]
    assert names == sorted(names)
    assert len(names) == len(set(names))
    assert all("==" in entry for entry in distributions)
