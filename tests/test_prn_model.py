"""PRN-FCN against an independent numpy forward pass, plus shapes and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.prn.model import PRNFCN


def _numpy_forward(model: PRNFCN, u: np.ndarray) -> np.ndarray:
    """Eval-mode forward written out with numpy from the state dict (the slow reference)."""
    s = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}

    def fc(x, name):
        return x @ s[name + ".weight"].T + s[name + ".bias"]

    def bn(x, name):
        return (x - s[name + ".running_mean"]) / np.sqrt(s[name + ".running_var"] + 1e-5) * s[
            name + ".weight"
        ] + s[name + ".bias"]

    def block(x, name):
        y = np.maximum(bn(fc(x, name + ".fc1"), name + ".bn1"), 0)
        return np.maximum(x + bn(fc(y, name + ".fc2"), name + ".bn2"), 0)

    b, p, _ = u.shape
    h = np.maximum(bn(fc(u.reshape(b, -1), "input.0"), "input.1"), 0)
    h = block(h, "shared")
    xy = u + fc(block(h, "xy_block"), "xy_out").reshape(b, p, 2)
    z = fc(block(h, "depth_block"), "depth_out").reshape(b, p, 1)
    return np.concatenate([xy, z], axis=-1)


def test_forward_matches_numpy_reference():
    torch.manual_seed(0)
    model = PRNFCN(num_points=7, hidden=24).double()
    # The output layers start at zero; give them weights so the reference checks them too.
    with torch.no_grad():
        for p in (*model.xy_out.parameters(), *model.depth_out.parameters()):
            p.normal_()
    # Non-trivial BatchNorm statistics: run a few training batches first.
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 7, 2, dtype=torch.float64))
    model.eval()
    u = torch.randn(5, 7, 2, dtype=torch.float64)
    out = model(u)
    assert out.shape == (5, 7, 3)
    np.testing.assert_allclose(
        out.detach().numpy(), _numpy_forward(model, u.numpy()), rtol=1e-10, atol=1e-12
    )


def test_untrained_network_predicts_input_with_small_nonzero_depth():
    model = PRNFCN(num_points=5, hidden=16)
    u = torch.randn(8, 5, 2)
    out = model(u)
    assert torch.equal(out[..., :2], u)
    # Not exactly zero (a saddle of the cost), but small against the unit-norm input.
    assert 0 < out[..., 2].abs().max() < 0.3


def test_gradients_reach_every_parameter():
    model = PRNFCN(num_points=5, hidden=16)
    with torch.no_grad():
        for p in (*model.xy_out.parameters(), *model.depth_out.parameters()):
            p.normal_()
    model(torch.randn(8, 5, 2)).square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_rejects_wrong_input_shape():
    model = PRNFCN(num_points=5, hidden=8)
    with pytest.raises(ValueError, match=r"\(B, 5, 2\)"):
        model(torch.zeros(4, 6, 2))
    with pytest.raises(ValueError):
        PRNFCN(num_points=0)
