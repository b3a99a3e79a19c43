"""How magnus values are sorted into MLflow metrics, params and JSON leftovers (no server)."""

from __future__ import annotations

from typing import Any

import pytest
from magnus_tracker_mlflow import values


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("accuracy", "accuracy"),
        ("train/loss", "train/loss"),
        ("render all.10.render/rendered", "render all.10.render/rendered"),
        ("weird$key!", "weird_key_"),
        ("a//b", "a__b"),
        ("/rooted", "_rooted"),
        ("trailing/", "trailing_"),
        ("..", "_.."),
        ("", "_"),
        ("x" * 300, "x" * 250),
    ],
)
def test_safe_key(key: str, expected: str) -> None:
    assert values.safe_key(key) == expected


def test_numbers_are_metrics_other_scalars_params_the_rest_leftovers() -> None:
    split = values.split_metrics(
        {
            "accuracy": 0.93,
            "epochs": 3,
            "loss": {"0": 1.5, "1": 0.75},
            "spam": {"0": "hello", "1": "hey"},
            "flag": True,
            "nothing": None,
            "config": {"lr": 0.01, "layers": [64, 32]},
            "long": "x" * (values.MAX_PARAM_VALUE_LENGTH + 1),
            "later": {3: 7},
        }
    )
    assert sorted(split.metrics) == [
        ("accuracy", 0, 0.93),
        ("epochs", 0, 3.0),
        ("later", 3, 7.0),
        ("loss", 0, 1.5),
        ("loss", 1, 0.75),
    ]
    assert split.params == {"spam": "hello", "spam_1": "hey", "flag": "True", "nothing": "None"}
    assert split.leftovers == {
        "config": {"0": {"lr": 0.01, "layers": [64, 32]}},
        "long": {"0": "x" * (values.MAX_PARAM_VALUE_LENGTH + 1)},
    }


def test_parameters_are_params_unless_too_long_or_not_scalar() -> None:
    parameters: dict[str, Any] = {
        "rows": 3,
        "lr": 0.01,
        "name": "run",
        "config": {"epochs": 10},
        "chunks": [0, 10],
        "big": "y" * 7000,
    }
    split = values.split_parameters(parameters, prefix="train/")
    assert split.params == {"train/rows": "3", "train/lr": "0.01", "train/name": "run"}
    assert split.leftovers == {"config": {"epochs": 10}, "chunks": [0, 10], "big": "y" * 7000}
    assert split.metrics == []


def test_chunks_respect_batch_limits() -> None:
    assert [len(c) for c in values.chunks(list(range(250)), 100)] == [100, 100, 50]
    assert list(values.chunks([], 100)) == []
