"""Binding parameters to function arguments, reading returns, and the environment transport.

This module deliberately has no ``from __future__ import annotations``: most functions below
carry real annotation objects, and ``test_string_annotations_*`` covers postponed ones.
"""

import functools
import importlib.util
import json
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Any, Optional, Union

import pytest
from pydantic import BaseModel, ConfigDict, Field

from magnus import parameters as P
from magnus.exceptions import MagnusError, ParameterError

# ----------------------------------------------------------------------------- fixtures


class Point(BaseModel):
    x: int
    y: int = 0


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    a: int


class Wrapped(BaseModel):
    size: int


class Aliased(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    learning_rate: float = Field(alias="learningRate")


def plain(count: int, name: str, ratio: float, flag: bool) -> None: ...


def optional(value: Optional[int], other: int | None = None) -> None: ...  # noqa: UP045


def generics(items: list[int], table: dict[str, int], pair: tuple[int, str]) -> None: ...


def unions(value: Union[int, str]) -> None: ...  # noqa: UP007


def annotated(value: Annotated[int, Field(gt=0)]) -> None: ...


def model_arg(point: Point) -> None: ...


def wrapped_arg(size: Wrapped) -> None: ...


def strict_arg(strict: Strict) -> None: ...


def untyped(anything, whatever: Any) -> None: ...  # type: ignore[no-untyped-def]


def with_default(required: int, optional_one: int = 7) -> None: ...


def with_kwargs(a: int, **rest: Any) -> None: ...


def with_typed_kwargs(**numbers: int) -> None: ...


def with_args(a: int, *args: Any) -> None: ...


def positional_only(a: int, /, b: int) -> None: ...


def positional_only_default(a: int = 1, /, b: int = 2) -> None: ...


def keyword_only(*, a: int) -> None: ...


def needs_lr(lr: float) -> None: ...


# ----------------------------------------------------------------------------- coercion


def test_plain_types_are_coerced_from_strings() -> None:
    bound = P.bind_arguments(
        plain, {"count": "3", "name": "n", "ratio": "0.5", "flag": "true", "unused": 1}
    )
    assert bound == {"count": 3, "name": "n", "ratio": 0.5, "flag": True}
    assert type(bound["count"]) is int


def test_number_reaches_str_argument_as_text() -> None:
    # 0.5 called str(value): a YAML `version: 1` still reaches a str argument.
    assert P.bind_arguments(plain, {"count": 1, "name": 5, "ratio": 1, "flag": False}) == {
        "count": 1,
        "name": "5",
        "ratio": 1.0,
        "flag": False,
    }


def test_optional() -> None:
    assert P.bind_arguments(optional, {"value": None}) == {"value": None}
    assert P.bind_arguments(optional, {"value": "4", "other": "5"}) == {"value": 4, "other": 5}


def test_generics() -> None:
    bound = P.bind_arguments(generics, {"items": ["1", 2], "table": {"a": "1"}, "pair": [1, "x"]})
    assert bound == {"items": [1, 2], "table": {"a": 1}, "pair": (1, "x")}


def test_union_keeps_the_matching_type() -> None:
    assert P.bind_arguments(unions, {"value": 3}) == {"value": 3}
    assert P.bind_arguments(unions, {"value": "abc"}) == {"value": "abc"}


def test_annotated_constraints_apply() -> None:
    assert P.bind_arguments(annotated, {"value": "2"}) == {"value": 2}
    with pytest.raises(ParameterError, match="greater than 0"):
        P.bind_arguments(annotated, {"value": 0})


def test_model_from_dict_ignores_extra_keys() -> None:
    bound = P.bind_arguments(model_arg, {"point": {"x": "1", "z": 9}})
    assert bound == {"point": Point(x=1, y=0)}
    assert isinstance(bound["point"], Point)


def test_model_instance_passes() -> None:
    point = Point(x=2)
    assert P.bind_arguments(model_arg, {"point": point})["point"] == point


def test_model_with_forbid_config_rejects_extra_keys() -> None:
    with pytest.raises(ParameterError, match="strict"):
        P.bind_arguments(strict_arg, {"strict": {"a": 1, "b": 2}}, step_name="s")


def test_non_dict_value_for_model_is_wrapped_under_the_argument_name() -> None:
    assert P.bind_arguments(wrapped_arg, {"size": "5"}) == {"size": Wrapped(size=5)}


def test_unannotated_and_any_pass_as_is() -> None:
    sentinel = object()
    bound = P.bind_arguments(untyped, {"anything": sentinel, "whatever": "3"})
    assert bound["anything"] is sentinel
    assert bound["whatever"] == "3"


def test_string_annotations_are_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _load_module(
        tmp_path,
        monkeypatch,
        "postponed_mod",
        """
        from __future__ import annotations
        from typing import Optional, TYPE_CHECKING
        from pydantic import BaseModel

        if TYPE_CHECKING:
            from decimal import Decimal

        class Cfg(BaseModel):
            depth: int

        def train(lr: float, epochs: Optional[int], cfg: Cfg, tags: list[str]) -> None: ...

        def unresolvable(amount: Decimal, count: int) -> None: ...
        """,
    )
    bound = P.bind_arguments(
        module.train, {"lr": "0.1", "epochs": "3", "cfg": {"depth": "2"}, "tags": ["a"]}
    )
    assert bound == {"lr": 0.1, "epochs": 3, "cfg": module.Cfg(depth=2), "tags": ["a"]}
    # A name only imported for type checkers cannot be resolved: such values pass unchecked
    # rather than failing every step of the pipeline.
    assert P.bind_arguments(module.unresolvable, {"amount": "1.5", "count": "2"}) == {
        "amount": "1.5",
        "count": "2",
    }


def _load_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> Any:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_map_variable_wins_over_parameter() -> None:
    assert P.bind_arguments(with_default, {"required": 1}, {"required": "2"}) == {"required": 2}


def test_default_is_left_alone() -> None:
    assert P.bind_arguments(with_default, {"required": 1}) == {"required": 1}
    assert P.bind_arguments(with_default, {"required": 1, "optional_one": "3"}) == {
        "required": 1,
        "optional_one": 3,
    }


def test_kwargs_receive_every_unbound_candidate() -> None:
    bound = P.bind_arguments(with_kwargs, {"a": "1", "b": 2, "c": {"d": 1}}, {"item": "x"})
    assert bound == {"a": 1, "b": 2, "c": {"d": 1}, "item": "x"}


def test_typed_kwargs_are_coerced() -> None:
    assert P.bind_arguments(with_typed_kwargs, {"a": "1", "b": 2}) == {"a": 1, "b": 2}
    with pytest.raises(ParameterError, match="'b'"):
        P.bind_arguments(with_typed_kwargs, {"a": "1", "b": "x"})


def test_var_positional_is_ignored() -> None:
    assert P.bind_arguments(with_args, {"a": 1, "args": [1, 2]}) == {"a": 1}


def test_keyword_only_is_bound() -> None:
    assert P.bind_arguments(keyword_only, {"a": "1"}) == {"a": 1}


def test_positional_only_without_default_is_explained() -> None:
    with pytest.raises(ParameterError) as info:
        P.bind_arguments(positional_only, {"a": 1, "b": 2}, step_name="s")
    message = str(info.value)
    assert "positional-only" in message and "'a'" in message and "Step 's'" in message


def test_positional_only_with_default_keeps_it() -> None:
    assert P.bind_arguments(positional_only_default, {"a": 5, "b": 6}) == {"b": 6}


def test_missing_parameter_names_step_function_and_parameter() -> None:
    with pytest.raises(ParameterError) as info:
        P.bind_arguments(needs_lr, {"other": 1}, step_name="train")
    assert str(info.value) == (
        f"Step 'train': function {__name__}.needs_lr needs parameter 'lr' "
        "but no parameter of that name is set"
    )
    assert isinstance(info.value, MagnusError)


def test_uncoercible_value_names_step_parameter_type_and_value() -> None:
    with pytest.raises(ParameterError) as info:
        P.bind_arguments(needs_lr, {"lr": "fast"}, step_name="train")
    message = str(info.value)
    assert message.startswith("Step 'train': parameter 'lr' of function ")
    assert "needs_lr" in message
    assert "expects float" in message
    assert "'fast' (str)" in message
    assert "valid number" in message  # pydantic's reason


def test_long_values_are_truncated_in_messages() -> None:
    with pytest.raises(ParameterError) as info:
        P.bind_arguments(needs_lr, {"lr": "x" * 5000}, step_name="train")
    assert len(str(info.value)) < 400
    assert "..." in str(info.value)


def test_generic_type_is_named_in_messages() -> None:
    with pytest.raises(ParameterError, match=r"expects list\[int\]"):
        P.bind_arguments(generics, {"items": ["a"], "table": {}, "pair": [1, "x"]})


def test_model_failure_names_the_field() -> None:
    with pytest.raises(ParameterError, match=r"expects Point .*x: Input should be a valid"):
        P.bind_arguments(model_arg, {"point": {"x": "nope"}}, step_name="s")


def test_arbitrary_class_annotation_checks_instances() -> None:
    class Frame:
        pass

    def uses_frame(frame: Frame) -> None: ...

    frame = Frame()
    assert P.bind_arguments(uses_frame, {"frame": frame})["frame"] is frame
    with pytest.raises(ParameterError, match="expects"):
        P.bind_arguments(uses_frame, {"frame": {"a": 1}})


def test_other_callables() -> None:
    class Job:
        def run(self, n: int) -> None: ...

        def __call__(self, n: int) -> None: ...

    job = Job()
    assert P.bind_arguments(job.run, {"n": "1"}) == {"n": 1}
    assert P.bind_arguments(job, {"n": "2"}) == {"n": 2}
    partial = functools.partial(with_default, optional_one=1)
    assert P.bind_arguments(partial, {"required": "3"}) == {"required": 3}


def test_signature_is_inspected_once_per_function() -> None:
    def counted(a: int) -> None: ...

    P.bind_arguments(counted, {"a": 1})
    hits = P._cached_plan.cache_info().hits
    P.bind_arguments(counted, {"a": 2})
    assert P._cached_plan.cache_info().hits == hits + 1


def test_cast_value_for_get_parameter() -> None:
    assert P.cast_value("3", int, "n") == 3
    assert P.cast_value({"x": 1}, Point, "") == Point(x=1)
    assert P.cast_value(5, Wrapped, "size") == Wrapped(size=5)
    assert P.cast_value("raw", None, "n") == "raw"
    with pytest.raises(ParameterError, match="parameter 'n' expects int"):
        P.cast_value("x", int, "n")


# ----------------------------------------------------------------------------- consumed


def test_consumed_parameters_are_json_ready() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    consumed = P.consumed_parameters(
        {
            "point": Point(x=1),
            "alias": Aliased(learning_rate=0.1),
            "n": 3,
            "items": (1, 2),
            "opaque": Opaque(),
            "raw": b"\xff",
        }
    )
    assert consumed == {
        "point": {"x": 1, "y": 0},
        "alias": {"learningRate": 0.1},
        "n": 3,
        "items": [1, 2],
        "opaque": "<opaque>",
        "raw": "b'\\xff'",
    }
    json.dumps(consumed)


def test_consumed_parameters_exclude() -> None:
    assert P.consumed_parameters({"a": 1, "item": 2}, exclude=["item"]) == {"a": 1}


# ----------------------------------------------------------------------------- returns


def test_return_none_sets_nothing() -> None:
    assert P.returned_parameters(None) == {}


def test_return_model_sets_top_level_fields_by_alias() -> None:
    class Out(BaseModel):
        point: Point
        score: float

    assert P.returned_parameters(Out(point=Point(x=1), score=0.5)) == {
        "point": {"x": 1, "y": 0},
        "score": 0.5,
    }
    assert P.returned_parameters(Aliased(learning_rate=1)) == {"learningRate": 1.0}


def test_return_dict_keeps_case_and_jsonifies_values() -> None:
    assert P.returned_parameters({"MixedCase": 5, "point": Point(x=2), "t": (1,)}) == {
        "MixedCase": 5,
        "point": {"x": 2, "y": 0},
        "t": [1],
    }


@pytest.mark.parametrize(
    ("value", "described"),
    [
        (3, "returned int"),
        ([1], "returned list"),
        ((1, 2), "returned tuple"),
        (Point, "the pydantic model class Point"),
        ({1: "a"}, "non-string key 1"),
    ],
)
def test_bad_returns_are_rejected(value: Any, described: str) -> None:
    with pytest.raises(ParameterError) as info:
        P.returned_parameters(value, "s", "mod.f")
    message = str(info.value)
    assert message.startswith("Step 's': function mod.f returned")
    assert described in message
    assert "return None, a dict or a pydantic model" in message


def test_non_json_returned_value_names_the_key() -> None:
    with pytest.raises(ParameterError, match="'handle'"):
        P.returned_parameters({"ok": 1, "handle": object()}, "s", "mod.f")


def test_non_json_model_field_names_the_key() -> None:
    class Holder(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        fine: int = 1
        thing: object

    with pytest.raises(ParameterError, match="'thing'"):
        P.returned_parameters(Holder(thing=object()), "s", "mod.f")


def test_returned_key_must_fit_an_environment_variable() -> None:
    with pytest.raises(ParameterError, match="'a=b'"):
        P.returned_parameters({"a=b": 1}, "s", "mod.f")


# ----------------------------------------------------------------------------- environment


def test_environment_round_trip_preserves_case() -> None:
    parameters = {"MixedCase": 5, "name": "text", "nested": {"a": [1, None]}, "p": Point(x=1)}
    environment = P.to_environment(parameters)
    assert environment == {
        "MAGNUS_PRM_MixedCase": "5",
        "MAGNUS_PRM_name": '"text"',
        "MAGNUS_PRM_nested": '{"a": [1, null]}',
        "MAGNUS_PRM_p": '{"x": 1, "y": 0}',
    }
    assert P.from_environment(environment) == {
        "MixedCase": 5,
        "name": "text",
        "nested": {"a": [1, None]},
        "p": {"x": 1, "y": 0},
    }


def test_from_environment_falls_back_to_raw_string_and_ignores_other_variables() -> None:
    environ = {
        "MAGNUS_PRM_Foo": "hello world",
        "MAGNUS_PRM_n": "3",
        "MAGNUS_PRM_": "nameless",
        "PATH": "/bin",
        "magnus_prm_lower": "1",
    }
    assert P.from_environment(environ) == {"Foo": "hello world", "n": 3}


def test_to_environment_rejects_unserialisable_values() -> None:
    with pytest.raises(ParameterError, match="'bad'"):
        P.to_environment({"bad": object()})


def test_changed_parameters() -> None:
    before = {"a": 1, "b": [1, 2], "c": "x", "flag": 1}
    after = {"a": 1, "b": [1, 3], "c": "x", "d": None, "flag": True}
    # Python says 1 == True; JSON (and the run log) does not.
    assert P.changed_parameters(before, after) == {"b": [1, 3], "d": None, "flag": True}
    assert P.changed_parameters(before, {}) == {}


def test_changed_in_environment_decodes_only_what_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = P.to_environment({"items": list(range(1000)), "a": 1, "b": [1, 2], "flag": 1})
    after = {
        **before,
        "MAGNUS_PRM_b": "[1,2]",  # another spelling of the same value: not a change
        "MAGNUS_PRM_flag": "true",  # 1 == True in Python, not in JSON: a change
        "MAGNUS_PRM_new": "hello",  # not JSON: kept as text
        "OTHER": "ignored",
    }
    decoded: list[str] = []
    real_loads = json.loads

    def counting_loads(text: str, **kwargs: Any) -> Any:
        decoded.append(text)
        return real_loads(text, **kwargs)

    monkeypatch.setattr(P.environment.json, "loads", counting_loads)
    assert P.changed_in_environment(before, after) == {"flag": True, "new": "hello"}
    # The untouched list is compared as text, never decoded.
    assert not [text for text in decoded if len(text) > 100]
    assert P.changed_in_environment(before, dict(before)) == {}


# ----------------------------------------------------------------------------- run start


def test_load_parameters_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("lr: 0.1\nCamel: {a: [1, 2]}\nname: x\n")
    assert P.load_parameters_file(path) == {"lr": 0.1, "Camel": {"a": [1, 2]}, "name": "x"}


def test_empty_parameters_file_has_no_parameters(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("# nothing yet\n")
    assert P.load_parameters_file(path) == {}


def test_parameters_file_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ParameterError) as info:
        P.load_parameters_file(path)
    message = str(info.value)
    assert str(path) in message
    assert "line " in message and "not valid YAML" in message


def test_parameters_file_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ParameterError, match=r"params\.yaml .*holds a list"):
        P.load_parameters_file(path)


def test_parameters_file_non_string_key(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("1: a\n")
    with pytest.raises(ParameterError, match="key 1"):
        P.load_parameters_file(path)


def test_parameters_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"Cannot read the parameters file .*missing\.yaml"):
        P.load_parameters_file(tmp_path / "missing.yaml")


def test_initial_parameters_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("lr: 0.1\nepochs: 3\n")
    environ = {"MAGNUS_PRM_lr": "0.5", "MAGNUS_PRM_Extra": "raw", "HOME": "/root"}
    assert P.initial_parameters(str(path), environ) == {"lr": 0.5, "epochs": 3, "Extra": "raw"}
    assert P.initial_parameters(None, environ) == {"lr": 0.5, "Extra": "raw"}
