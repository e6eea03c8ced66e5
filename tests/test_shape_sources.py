"""PCA shape sources: one object per kind, each giving its shapes through one method."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.analysis.shape_sources import (
    CategoryDeformations,
    DemoDeformations,
    MeshFiles,
    ShapeSet,
)
from engine.core.errors import CheckpointError, InputError
from engine.geometry.primitives import icosphere
from engine.io.mesh import save_mesh


def test_demo_and_mesh_files(tmp_path):
    v, f = icosphere(2)
    mesh = tmp_path / "ball.ply"
    save_mesh(mesh, v, f)
    demo = DemoDeformations(mesh=str(mesh), num_samples=5, num_handles=4).shapes()
    assert isinstance(demo, ShapeSet) and demo.shapes.shape == (5, len(v), 3)
    assert demo.faces.shape == f.shape and not demo.aligned
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"m{i}.ply"))
        save_mesh(paths[-1], v * (1 + 0.1 * i), f)
    files = MeshFiles(tuple(paths)).shapes()
    np.testing.assert_allclose(files.shapes[2].numpy(), v * 1.2)
    with pytest.raises(InputError, match="at least 2"):
        MeshFiles(tuple(paths[:1])).shapes()


def test_category_checkpoint_gives_its_learned_deformations(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from engine.category.config import CategoryConfig
    from engine.category.training import CategoryTrainer

    torch.set_num_threads(1)
    config = CategoryConfig(
        data="synthetic:quadruped?instances=6&size=48",
        size=32,
        iterations=3,
        network_steps=2,
        network_batch=3,
        warmup_epochs=0,
        batch_size=3,
        hypotheses=2,
        encoder_width=4,
        handles=5,
        render_faces=300,
    )
    trainer = CategoryTrainer(config)
    trainer.run()
    path = tmp_path / "cat.pt"
    trainer.save_checkpoint(path)
    got = CategoryDeformations(str(path)).shapes()
    fit = trainer.database_fit()["vertices"]
    assert got.shapes.shape == fit.shape and got.faces.shape[1] == 3
    np.testing.assert_allclose(got.shapes.numpy(), fit, atol=1e-4)
    assert "learned deformations" in CategoryDeformations(str(path)).describe()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"nope")
    with pytest.raises(CheckpointError, match=r"bad\.pt"):
        CategoryDeformations(str(bad)).shapes()
