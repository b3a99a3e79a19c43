"""Which code and which environment a step ran with.

``code_identity`` answers "can this run be reproduced from a commit?": the HEAD commit, whether
the working tree matched it, and where the repository lives. gitpython is imported inside the
functions, so ``import magnus`` neither loads it nor runs ``git --version`` (which gitpython does
on import). Nothing here raises or prints: outside a repository, in a repository without commits,
or without git, the identity says why it has no commit.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from magnus.runlog.models import CodeIdentity

_MAX_LISTED = 20

# Set once gitpython failed to import (no git executable, say), so that every later step does
# not pay for another failed `git --version`.
_git_unavailable: str | None = None

# User configuration must not change what git prints for us (colour, external diff tools,
# textconv filters, prefixes), or the stored diff could not be applied again.
_DIFF_OPTIONS = (
    "--binary",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)


@dataclass
class _TreeState:
    """What ``git status`` says about a working tree."""

    repo: Any
    sha: str
    changed: list[str] = field(default_factory=list)
    untracked: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.changed and not self.untracked


def _import_git() -> Any:
    """The ``git`` module, or a string saying why it cannot be used."""
    global _git_unavailable
    if _git_unavailable is not None:
        return _git_unavailable
    try:
        import git
    except Exception as exc:  # gitpython raises ImportError when the git executable is missing
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _git_unavailable = f"git is not available: {first_line}"
        return _git_unavailable
    return git


def _parse_porcelain(output: str) -> tuple[list[str], list[str]]:
    """Tracked paths with changes and untracked paths from ``git status --porcelain -z``."""
    changed: list[str] = []
    untracked: list[str] = []
    entries = output.split("\0")
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        if status == "??":
            untracked.append(path)
        else:
            changed.append(path)
            if "R" in status or "C" in status:
                index += 1  # with -z a rename or copy is followed by its source path
    return changed, untracked


def _ignored_prefixes(base: Path, root: Path, ignore: Iterable[str]) -> list[str]:
    """The ``ignore`` folders as paths relative to the repository root, ending in '/'."""
    prefixes: list[str] = []
    for folder in ignore:
        candidate = Path(folder)
        if not candidate.is_absolute():
            candidate = base / candidate
        try:
            relative = candidate.resolve().relative_to(root)
        except ValueError:
            continue  # outside the repository: git never reports it
        text = relative.as_posix()
        prefixes.append("" if text == "." else text.rstrip("/") + "/")
    return prefixes


def _under(path: str, prefixes: list[str]) -> bool:
    return any(path.startswith(prefix) for prefix in prefixes)


def _inspect(path: str | Path, ignore: Iterable[str]) -> _TreeState | str:
    """The state of the working tree containing ``path``, or why there is none."""
    git = _import_git()
    if isinstance(git, str):
        return git
    base = Path(path)
    try:
        repo = git.Repo(base, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return f"not inside a git repository: {base.resolve()}"
    except Exception as exc:
        return f"cannot open the git repository at {base.resolve()}: {_one_line(exc)}"
    try:
        if repo.bare or repo.working_tree_dir is None:
            return f"the git repository at {repo.git_dir} has no working tree"
        try:
            # Reads HEAD and the refs from disk; repo.head.commit would start a long-lived
            # `git cat-file` process just to learn the object type.
            sha = git.SymbolicReference.dereference_recursive(repo, "HEAD")
        except ValueError:
            return f"the git repository at {repo.working_tree_dir} has no commits yet"
        output = repo.git.status("--porcelain", "-z", "--untracked-files=all")
    except Exception as exc:
        return f"cannot read the state of the git repository: {_one_line(exc)}"
    changed, untracked = _parse_porcelain(output)
    root = Path(repo.working_tree_dir).resolve()
    prefixes = _ignored_prefixes(base, root, ignore)
    if prefixes:
        untracked = [item for item in untracked if not _under(item, prefixes)]
    return _TreeState(repo=repo, sha=sha, changed=changed, untracked=untracked)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__


def _without_credentials(url: str) -> str:
    # https://user:token@host/repo must not land in the run log; scp-like git@host:repo has
    # no scheme and carries only a user name, so it is left alone.
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _remote_url(repo: Any) -> str | None:
    try:
        remotes = list(repo.remotes)
        if not remotes:
            return None
        chosen = next((remote for remote in remotes if remote.name == "origin"), remotes[0])
        url = chosen.url
    except Exception:
        return None
    return _without_credentials(str(url)) if url else None


def _changes_message(paths: list[str]) -> str:
    listed = ", ".join(paths[:_MAX_LISTED])
    more = len(paths) - _MAX_LISTED
    return f"changes found in {listed}" + (f" and {more} more" if more > 0 else "")


def code_identity(path: str | Path = ".", ignore: Iterable[str] = ()) -> CodeIdentity:
    """The git identity of the code in the working tree containing ``path``.

    ``code_identifier`` is the HEAD commit and ``code_identifier_dependable`` is true only
    when the tree matches it: no staged or unstaged change to a tracked file and no untracked
    file, except files ``.gitignore`` ignores and files under the ``ignore`` folders (magnus'
    own output such as ``.catalog``; relative folders are taken from ``path``).
    ``code_identifier_url`` is the ``origin`` remote (else the first remote) without any
    credentials in it, or None. ``code_identifier_message`` lists the changes, or says why
    there is no commit (outside a repository, no commits yet, git missing). Never raises.
    """
    state = _inspect(path, ignore)
    if isinstance(state, str):
        return CodeIdentity(
            code_identifier=None,
            code_identifier_type="git",
            code_identifier_dependable=False,
            code_identifier_url=None,
            code_identifier_message=state,
        )
    return CodeIdentity(
        code_identifier=state.sha,
        code_identifier_type="git",
        code_identifier_dependable=state.clean,
        code_identifier_url=_remote_url(state.repo),
        code_identifier_message=""
        if state.clean
        else _changes_message(state.changed + state.untracked),
    )


def code_diff(path: str | Path = ".", ignore: Iterable[str] = ()) -> str | None:
    """What differs from HEAD in a dirty working tree, as ``git diff HEAD --binary`` text.

    Untracked files (those :func:`code_identity` counts) are listed first in ``#`` comment
    lines, which ``git apply`` skips; their content is not included. None for a clean tree,
    outside a repository or on any git failure.

    Bytes that are not UTF-8 (a latin-1 source file, say) are kept as surrogate escapes so
    the text round-trips exactly: write it with ``errors="surrogateescape"``.
    """
    state = _inspect(path, ignore)
    if isinstance(state, str) or state.clean:
        return None
    header = ""
    if state.untracked:
        lines = "".join(f"#   {item}\n" for item in state.untracked)
        header = f"# untracked files (content not included):\n{lines}"
    if not state.changed:
        return header
    try:
        raw: bytes = state.repo.git.diff("HEAD", *_DIFF_OPTIONS, stdout_as_string=False)
    except Exception:
        return header or None
    text = raw.decode("utf-8", errors="surrogateescape")
    if text and not text.endswith("\n"):
        text += "\n"  # gitpython strips the final newline; git apply wants it
    return header + text


# ------------------------------------------------------------------------------ environment


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distributions() -> list[str]:
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        # Wheels name their metadata folder <name>-<version>.dist-info; reading that is ~20x
        # faster than parsing every METADATA file. Anything else falls back to the metadata.
        folder = getattr(getattr(dist, "_path", None), "name", "")
        stem = folder[: -len(".dist-info")] if folder.endswith(".dist-info") else ""
        if stem.count("-") == 1:
            name, version = stem.split("-")
        else:
            try:
                name, version = dist.metadata["Name"], dist.version
            except Exception:
                continue
            if not name:
                continue
        # sys.path order decides which copy imports, so the first one seen wins.
        found.setdefault(_canonical(name), version)
    return [f"{name}=={version}" for name, version in sorted(found.items())]


@functools.lru_cache(maxsize=1)
def _platform() -> str:
    # platform.platform() reads the interpreter binary to find the libc version; once will do.
    return platform.platform()


def environment_identity() -> dict[str, Any]:
    """The python interpreter, platform and installed distributions (``name==version``).

    Distribution names are normalised (PEP 503: lower case, ``-``); the list is sorted and
    holds one entry per name, the one found first on ``sys.path``. Nothing is imported.
    """
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": _platform(),
        "executable": sys.executable,
        "distributions": _distributions(),
    }
