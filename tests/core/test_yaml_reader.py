"""The one YAML reader: what it refuses (see also test_bad_input.py) and what it must keep."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from magnus import yaml_reader
from magnus.exceptions import ConfigurationError, ParameterError
from magnus.yaml_reader import MAX_EXPANDED_SIZE, read_yaml


def _read(tmp_path: Path, text: str | bytes) -> object:
    path = tmp_path / "f.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return read_yaml(path, "test file")


def test_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    text = "base: &base {type: task, next: b}\nstep:\n  <<: *base\n  next: c\n"
    assert _read(tmp_path, text) == {
        "base": {"type": "task", "next": "b"},
        "step": {"type": "task", "next": "c"},
    }


def test_a_key_twice_next_to_a_merge_is_refused(tmp_path: Path) -> None:
    text = "base: &base {a: 1}\nstep:\n  <<: *base\n  next: c\n  next: d\n"
    with pytest.raises(ConfigurationError, match=r"'next' appears twice .*first at line 4"):
        _read(tmp_path, text)


def test_keys_equal_in_value_are_duplicates(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="appears twice"):
        _read(tmp_path, "1: a\n0x1: b\n")


def test_moderate_aliases_are_fine(tmp_path: Path) -> None:
    text = "defaults: &d {lr: 0.1, layers: [1, 2, 3]}\na: *d\nb: *d\nc: [*d, *d]\n"
    data = _read(tmp_path, text)
    assert isinstance(data, dict) and data["c"] == [data["defaults"]] * 2


def test_alias_bomb_fails_fast_with_the_chosen_error(tmp_path: Path) -> None:
    levels = ["a: &a [" + ", ".join(['"lol"'] * 9) + "]"]
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(levels) + "\n")
    started = time.monotonic()
    with pytest.raises(ParameterError, match=f"{MAX_EXPANDED_SIZE:,}"):
        read_yaml(path, "parameters file", ParameterError)
    assert time.monotonic() - started < 5


def test_the_bound_grows_with_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_reader, "MAX_EXPANDED_SIZE", 1000)
    # a file larger than the bound, without aliases to expand, is read whole
    values = ", ".join(["x" * 100] * 50)
    data = _read(tmp_path, f"a: &a 1\nb: *a\nbig: [{values}]\n")
    assert isinstance(data, dict) and len(data["big"]) == 50
    # a small file whose aliases expand past the bound is not
    with pytest.raises(ConfigurationError, match="1,000 characters"):
        _read(tmp_path, "a: &a " + "y" * 300 + "\nb: [*a, *a, *a, *a]\n")


def test_deep_nesting_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"f\.yaml"):
        _read(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n")


def test_the_same_text_quoted_or_not_keeps_its_type(tmp_path: Path) -> None:
    # Plain scalars' tags are remembered by their text within a file; quoting still decides.
    path = tmp_path / "values.yaml"
    path.write_text(
        "a: 1\nb: '1'\nc: 1\nd: yes\ne: 'yes'\nf: null\ng: 'null'\nh: ~\ni: 1.5\nj: '1.5'\n"
        "k: [1, '1', true, 'true']\nl: text\nm: text\n"
    )
    assert read_yaml(path, "test file") == {
        "a": 1,
        "b": "1",
        "c": 1,
        "d": True,
        "e": "yes",
        "f": None,
        "g": "null",
        "h": None,
        "i": 1.5,
        "j": "1.5",
        "k": [1, "1", True, "true"],
        "l": "text",
        "m": "text",
    }


def test_tags_and_aliases_read_as_pyyaml_reads_them(tmp_path: Path) -> None:
    import yaml

    text = (
        "a: &x [1, {k: v}]\nb: *x\nc: !!str 12\nd: !!float '1'\ne: 2001-12-14\n"
        "f: !!binary aGk=\ng: {? [1, 2] : unhashable}\n"
    )
    path = tmp_path / "tags.yaml"
    path.write_text(text.replace("g: {? [1, 2] : unhashable}\n", ""))
    document = read_yaml(path, "test file")
    assert document == yaml.load(path.read_text(), Loader=yaml.SafeLoader)
    assert document["a"] is document["b"]  # an alias is its anchor's value, not a copy
    assert document["c"] == "12" and document["d"] == 1.0 and document["f"] == b"hi"
    # What only PyYAML's constructor builds still fails as it makes it fail, in one line.
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=r"tags\.yaml"):
        read_yaml(path, "test file")
