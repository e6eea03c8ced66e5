"""TrainConfig validation and its dict round trip (the form stored in checkpoints)."""

from __future__ import annotations

import dataclasses

import pytest

from engine.errors import CheckpointError, InputError
from engine.prn.config import TrainConfig


def test_defaults_are_valid_and_round_trip():
    cfg = TrainConfig()
    cfg.validate()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    custom = dataclasses.replace(cfg, hidden=64, lam=0.1, device="cpu", seed=7)
    assert TrainConfig.from_dict(custom.to_dict()) == custom


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("data", ""),
        ("iterations", 0),
        ("iterations", 1.5),
        ("lam", -1.0),
        ("lam", float("nan")),
        ("hidden", 0),
        ("missing_ratio", 0.95),
        ("seed", -1),
        ("device", "tpu"),
        ("batch_size", 100),
        ("group_size", 1),
        ("lr", 0.0),
        ("lr", float("inf")),
        ("weight_decay", -0.1),
        ("lr_decay", 1.5),
        ("lr_step", 0),
        ("eval_every", 0),
        ("preview_frame", -1),
        ("iterations", True),
    ],
)
def test_invalid_field_is_named(field, value):
    cfg = dataclasses.replace(TrainConfig(), **{field: value})
    with pytest.raises(InputError) as info:
        cfg.validate()
    assert info.value.field == field
    assert field in str(info.value)


def test_from_dict_rejects_unknown_and_missing_keys():
    d = TrainConfig().to_dict()
    with pytest.raises(CheckpointError, match="unknown"):
        TrainConfig.from_dict({**d, "momentum": 0.9})
    del d["lam"]
    with pytest.raises(CheckpointError, match="missing"):
        TrainConfig.from_dict(d)
    with pytest.raises(CheckpointError):
        TrainConfig.from_dict([1, 2])
    with pytest.raises(InputError) as info:
        TrainConfig.from_dict({**TrainConfig().to_dict(), "hidden": -3})
    assert info.value.field == "hidden"
