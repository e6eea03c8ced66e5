"""TrainConfig validation and its dict round trip (the form stored in checkpoints)."""

from __future__ import annotations

import dataclasses

import pytest

from engine.core.errors import CheckpointError, InputError
from engine.prn.config import (
    LARGE_DATA_ITERATIONS,
    SEQUENCE_ITERATIONS,
    WARM_ITERATIONS,
    WARM_LR,
    TrainConfig,
)


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
        ("reflections", "yes"),
        ("logsum", 1),
        ("logsum_from", -1),
        ("warm_start", "yes"),
        ("logsum_eps", 0.0),
        ("mirror_margin", 0.0),
        ("mirror_margin", 1.5),
        ("align_max_iter", 0),
        ("align_max_iter", 2.0),
        ("eval_every", 0),
        ("preview_frame", -1),
        ("iterations", True),
    ],
)
def test_invalid_field_is_named(field, value):
    cfg = dataclasses.replace(TrainConfig(group_size=128), **{field: value})
    with pytest.raises(InputError) as info:
        cfg.validate()
    assert info.value.field == field
    assert field in str(info.value)


def test_resolved_fills_only_automatic_fields():
    short, long = TrainConfig().resolved(357), TrainConfig().resolved(20000)
    assert (short.batch_size, short.group_size, short.lr, short.reflections) == (
        357,
        357,
        WARM_LR,
        True,
    )
    assert (long.batch_size, long.group_size, long.lr, long.reflections) == (256, 128, 1e-4, False)
    assert short.logsum is True and long.logsum is True
    assert (short.iterations, long.iterations) == (WARM_ITERATIONS, LARGE_DATA_ITERATIONS)
    # A sequence starts from the classic reconstruction, larger data from random weights.
    assert (short.warm_start, short.logsum_from) == (True, 0)
    assert (long.warm_start, long.logsum_from) == (False, 1000)
    cold = TrainConfig(warm_start=False).resolved(357)
    assert (cold.iterations, cold.lr, cold.logsum_from) == (SEQUENCE_ITERATIONS, 1e-3, 1000)
    assert TrainConfig(warm_start=False, logsum_from=5).resolved(357).logsum_from == 5
    assert TrainConfig(iterations=7).resolved(20000).iterations == 7
    assert (short.lam, short.mirror_weight, short.logsum_eps) == (0.01, 0.0, 0.003)
    assert (long.lam, long.mirror_weight, long.logsum_eps) == (0.1, 0.5, 0.01)
    assert TrainConfig().resolved(20000, complete=False).mirror_weight == 0.0
    assert TrainConfig(lam=0.02, mirror_weight=0.0).resolved(20000).lam == 0.02
    assert TrainConfig(lam=0.02, mirror_weight=0.0).resolved(20000).mirror_weight == 0.0
    assert TrainConfig().resolved(5000).group_size == 128
    assert TrainConfig().resolved(1500).batch_size == 1500
    mine = TrainConfig(group_size=100, lr=3e-4, reflections=False, logsum=True).resolved(20000)
    assert (mine.batch_size, mine.group_size, mine.lr, mine.reflections) == (200, 100, 3e-4, False)
    assert mine.logsum is True
    assert TrainConfig(logsum=False).resolved(357).logsum is False
    short.validate()
    long.validate()
    with pytest.raises(InputError) as info:
        TrainConfig(batch_size=100).resolved(20000).validate()
    assert info.value.field == "batch_size"


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


def test_checkpoint_without_mirror_margin_keeps_the_old_depth_sign_term():
    old = TrainConfig().to_dict()
    del old["mirror_margin"]
    assert TrainConfig.from_dict(old).mirror_margin == 1.0
    assert TrainConfig().mirror_margin == 0.8
