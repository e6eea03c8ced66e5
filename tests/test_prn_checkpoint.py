"""Checkpoint files: round trip, atomic writes, and clear errors for every kind of bad file."""

from __future__ import annotations

import datetime as dt
import os
import pickle
import stat

import pytest
import torch

from engine.core.errors import CheckpointError
from engine.prn.checkpoint import (
    FORMAT_VERSION,
    build_model,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from engine.prn.config import TrainConfig
from engine.prn.model import PRNFCN


def _write(path, model=None, **overrides):
    model = model or PRNFCN(6, 16)
    kwargs = dict(
        model_state=model.state_dict(),
        config=TrainConfig(hidden=16).to_dict(),
        data_description={"source": "test", "num_points": 6},
        metrics={"e3d": 0.25, "mpjpe": 1.5},
        extra={"note": torch.arange(3)},
        step=42,
        history=[{"f": 1.0, "g": 2.0, "total": 1.1}],
    )
    kwargs.update(overrides)
    save_checkpoint(path, **kwargs)
    return model


def test_round_trip(tmp_path):
    path = tmp_path / "run.pt"
    model = _write(path)
    ckpt = load_checkpoint(path)
    assert ckpt.format_version == FORMAT_VERSION
    assert ckpt.config == TrainConfig(hidden=16)
    assert ckpt.metrics == {"e3d": 0.25, "mpjpe": 1.5}
    assert ckpt.step == 42 and ckpt.num_points == 6
    assert ckpt.history == [{"f": 1.0, "g": 2.0, "total": 1.1}]
    assert ckpt.data_description["source"] == "test"
    assert dt.datetime.fromisoformat(ckpt.created).tzinfo is not None
    assert torch.equal(ckpt.extra["note"], torch.arange(3))
    loaded, _ = load_model(path)
    assert not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    # Atomic write: only the final file is left in the folder, with ordinary permissions.
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_refuses_to_save_nan_weights_and_keeps_old_file(tmp_path):
    path = tmp_path / "run.pt"
    _write(path)
    before = path.read_bytes()
    bad = PRNFCN(6, 16)
    with torch.no_grad():
        bad.xy_out.weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="non-finite"):
        _write(path, model=bad)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]


def _torch_file(path, obj):
    torch.save(obj, path)
    return path


def test_bad_files_raise_checkpoint_error(tmp_path):
    good = tmp_path / "good.pt"
    _write(good)
    raw = torch.load(good, weights_only=True)

    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "absent.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "text.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(truncated)
    with pytest.raises(CheckpointError, match="not a PRN checkpoint"):
        load_checkpoint(_torch_file(tmp_path / "foreign.pt", {"state_dict": {}}))
    with pytest.raises(CheckpointError, match="newer version"):
        load_checkpoint(
            _torch_file(tmp_path / "newer.pt", {**raw, "format_version": FORMAT_VERSION + 1})
        )
    missing = dict(raw)
    del missing["config"]
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(_torch_file(tmp_path / "missing.pt", missing))
    assert info.value.field == "config"
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(_torch_file(tmp_path / "type.pt", {**raw, "step": "ten"}))
    assert info.value.field == "step"
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(
            _torch_file(tmp_path / "cfg.pt", {**raw, "config": {**raw["config"], "hidden": -1}})
        )
    assert info.value.field == "config.hidden"
    nan_state = {k: v.clone() for k, v in raw["model_state"].items()}
    nan_state["depth_out.bias"][0] = float("inf")
    with pytest.raises(CheckpointError, match="non-finite"):
        load_checkpoint(_torch_file(tmp_path / "nan.pt", {**raw, "model_state": nan_state}))


def test_untrusted_pickle_is_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        torch.save(
            {"format": "shapebench-prn", "x": Evil()}, fh, pickle_protocol=pickle.HIGHEST_PROTOCOL
        )
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(path)


def test_mismatched_weights(tmp_path):
    path = tmp_path / "run.pt"
    # Config says hidden 16, weights have hidden 8.
    _write(path, model=PRNFCN(6, 8))
    with pytest.raises(CheckpointError) as info:
        build_model(load_checkpoint(path))
    assert info.value.field == "model_state"


def test_foreign_pickles_fail_without_torch_warnings(tmp_path, recwarn):
    """torch warns about the pickle protocol of raw pickles and old-format torch files before
    refusing them; the loader's one CheckpointError is all that reaches the user."""
    raw = tmp_path / "raw.pt"
    with open(raw, "wb") as fh:
        pickle.dump({"a": 1}, fh, protocol=4)
    legacy = tmp_path / "legacy.pt"
    torch.save({"a": 1}, legacy, _use_new_zipfile_serialization=False, pickle_protocol=5)
    for path in (raw, legacy):
        with pytest.raises(CheckpointError, match="not a readable") as info:
            load_checkpoint(path)
        assert str(path) in str(info.value)
    assert [str(w.message) for w in recwarn] == []
