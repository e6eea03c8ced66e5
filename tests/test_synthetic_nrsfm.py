"""Generated NRSfM sequences: deterministic, in the documented ranges, orthographic, with
noise and missing points as asked."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.errors import DataError
from engine.synthetic.nrsfm import SequenceSpec, generated_sequence, sequence_spec


def test_collection_is_deterministic_and_varied():
    specs = [sequence_spec(i, seed=5) for i in range(12)]
    assert specs == [sequence_spec(i, seed=5) for i in range(12)]
    assert {s.kind for s in specs} == {"human", "animal"}
    assert len({s.seed for s in specs}) == 12
    assert all(150 <= s.frames <= 400 and s.points <= 100 for s in specs)
    assert sequence_spec(0, seed=6) != specs[0]


@pytest.mark.parametrize("kind,points", [("human", 30), ("animal", 25)])
def test_sequence_is_orthographic_and_deforms(kind, points):
    spec = SequenceSpec(kind=kind, frames=30, points=points, seed=11)
    seq = generated_sequence(spec)
    assert seq.points3d.shape == (30, points, 3)
    np.testing.assert_allclose(seq.points2d, seq.points3d[..., :2])
    again = generated_sequence(spec)
    np.testing.assert_array_equal(seq.points3d, again.points3d)
    # Non-rigid: pairwise distances change over time (a rigid body keeps them).
    d = np.linalg.norm(seq.points3d[:, :, None] - seq.points3d[:, None], axis=-1)
    assert np.abs(d[-1] - d[0]).max() > 0.02 * d[0].max()
    assert seq.description["name"] == spec.name()


def test_noise_and_missing_points():
    spec = SequenceSpec(kind="human", frames=50, points=20, noise=0.01, missing=0.4, seed=2)
    seq = generated_sequence(spec)
    assert seq.visibility is not None
    assert (seq.visibility.sum(1) >= 3).all()
    assert 0.45 < seq.visibility.mean() < 0.75
    vis = seq.visibility
    err = np.abs(seq.points2d - seq.points3d[..., :2])[vis]
    assert err.max() > 0 and np.all(seq.points2d[~vis] == 0)


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"kind": "bird"}, "kind"),
        ({"frames": 3}, "frames"),
        ({"kind": "human", "points": 10}, "points"),
        ({"missing": 0.8}, "missing"),
        ({"noise": -1.0}, "noise"),
    ],
)
def test_bad_specs_name_the_field(changes, field):
    with pytest.raises(DataError) as info:
        generated_sequence(SequenceSpec(**changes))
    assert info.value.field == field
