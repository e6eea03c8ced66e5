"""engine.core.device: the one device choice, and its environment override."""

from __future__ import annotations

import pytest
import torch

import main
from engine.core.device import default_device, resolve_device


def test_default_and_override(monkeypatch):
    monkeypatch.delenv("SHAPEBENCH_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert default_device().type == expected
    monkeypatch.setenv("SHAPEBENCH_DEVICE", "cpu")
    assert default_device() == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")


@pytest.mark.parametrize("value", ["gpu", "meta", "cuda:x"])
def test_bad_override_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv("SHAPEBENCH_DEVICE", value)
    with pytest.raises(ValueError, match="SHAPEBENCH_DEVICE"):
        default_device()


def test_app_refuses_to_start_on_a_bad_override(monkeypatch, capsys):
    monkeypatch.setenv("SHAPEBENCH_DEVICE", "gpu")
    assert main.main([]) == 2
    assert "SHAPEBENCH_DEVICE='gpu'" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_override_without_a_gpu(monkeypatch):
    monkeypatch.setenv("SHAPEBENCH_DEVICE", "cuda")
    with pytest.raises(ValueError, match="not usable"):
        default_device()
