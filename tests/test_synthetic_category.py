"""The synthetic articulated category: geometry, consistency of every written quantity with the
hidden ground truth, the folder it writes, the ``synthetic:quadruped`` spec and its command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.category.template import category_template
from engine.core.errors import DataError, InputError
from engine.io.image_sets import load_image_set
from engine.render.cameras import project
from engine.render.rasterizer import RasterSettings, rasterize
from engine.synthetic.category import (
    generate_category,
    make_synthetic,
    parse_spec,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "shared" / "data" / "templates"


@pytest.fixture(scope="module")
def small_set():
    template = category_template()
    return template, generate_category(template, instances=6, size=48, seed=3, frames_per_video=3)


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_demo_template_axes_and_keypoints(small_set):
    template, _ = small_set
    assert (template.up_axis, template.front_axis) == ("z", "x")
    assert len(template.keypoint_names) == len(template.keypoint_vertices) >= 6
    assert len(set(template.keypoint_names)) == len(template.keypoint_names)


@pytest.mark.skipif(not TEMPLATES.is_dir(), reason="shared/data/templates not present")
def test_shared_templates_axes_and_their_keypoint_files():
    horse = category_template(TEMPLATES / "horse.obj")
    # The horse's head is at -x and it stands on -y.
    assert (horse.up_axis, horse.front_axis) == ("y", "-x")
    names = json.loads((TEMPLATES / "horse_keypoints.json").read_text())
    assert horse.keypoint_names == list(names)


def test_shapes_and_videos(small_set):
    template, d = small_set
    n = template.mesh.num_vertices
    assert d["masks"].shape == (6, 48, 48) and d["images"].shape == (6, 48, 48, 3)
    assert d["images"].dtype == np.uint8 and d["masks"].dtype == bool
    assert d["ground_truth"]["vertices"].shape == (6, n, 3)
    assert d["flow"].shape == (6, 48, 48, 2) and d["cameras"].shape == (6, 7)
    assert list(d["sequences"]) == ["v0000", "v0001"] and len(d["sequences"]["v0001"]) == 3
    assert all(m.sum() > 20 for m in d["masks"])
    # Poses differ from the template and from each other (the deformation is not a no-op).
    verts = d["ground_truth"]["vertices"]
    assert np.abs(verts - template.mesh.vertices).max() > 0.05
    assert np.abs(verts[0] - verts[3]).max() > 0.05


def test_ground_truth_cameras_keypoints_and_visibility_agree(small_set):
    template, d = small_set
    gt = d["ground_truth"]
    # The stored cameras project the stored vertices (it once took them centred, which made a
    # renderer of the truth under the true cameras miss the masks).
    screen = project(torch.as_tensor(gt["vertices"]), torch.as_tensor(d["cameras"]))
    np.testing.assert_allclose(screen[..., :2].numpy(), gt["vertices2d"], atol=1e-3)
    settings = RasterSettings(image_size=48)
    faces = torch.as_tensor(gt["faces"], dtype=torch.int64)
    masks = rasterize(screen.float(), faces, settings).mask.numpy()
    inter = (masks & d["masks"]).sum((1, 2))
    union = (masks | d["masks"]).sum((1, 2))
    assert (inter / union).min() > 0.99
    kp = d["keypoints"]
    np.testing.assert_allclose(
        kp[..., :2], gt["vertices2d"][:, template.keypoint_vertices], atol=1e-4
    )
    assert 0.2 < kp[..., 2].mean() < 0.95
    # A visible keypoint lies on the mask (its pixel or a neighbour: it is on the surface).
    for i in range(len(kp)):
        for x, y, v in kp[i]:
            if v:
                r, c = int(np.clip(y, 0, 47)), int(np.clip(x, 0, 47))
                assert d["masks"][i, max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].any()


def test_flow_is_the_true_motion_of_visible_vertices(small_set):
    _, d = small_set
    v2 = d["ground_truth"]["vertices2d"]
    errors = []
    for t in (0, 1, 3, 4):  # frames with a next frame in their video
        motion = v2[t + 1] - v2[t]
        cols = np.clip(v2[t, :, 0].astype(int), 0, 47)
        rows = np.clip(v2[t, :, 1].astype(int), 0, 47)
        on = d["masks"][t, rows, cols]
        errors.append(np.abs(d["flow"][t, rows[on], cols[on]] - motion[on]).sum(-1))
        assert np.abs(motion).max() > 0.1
    assert np.median(np.concatenate(errors)) < 0.3
    assert np.abs(d["flow"][2]).max() == 0 and np.abs(d["flow"][5]).max() == 0  # last frames


def test_folder_round_trip_and_command(tmp_path, capsys):
    from main import main

    folder = make_synthetic(tmp_path / "set", instances=4, size=40, seed=1)
    assert (folder / "template.ply").is_file() and (folder / "template_keypoints.json").is_file()
    s = load_image_set(folder, size=32)
    assert len(s) == 4 and s.images.shape == (4, 32, 32, 3) and s.flow is not None
    assert s.ground_truth["vertices"].shape[0] == 4
    assert (
        main(
            [
                "category",
                "make-synthetic",
                "--out",
                str(tmp_path / "cli"),
                "--instances",
                "3",
                "--size",
                "32",
            ]
        )
        == 0
    )
    assert "wrote 3 instances" in capsys.readouterr().out
    assert (
        main(
            [
                "category",
                "make-synthetic",
                "--out",
                str(tmp_path / "cli"),
                "--instances",
                "3",
                "--size",
                "32",
            ]
        )
        == 2
    )  # not empty
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not an empty folder" in err and len(err.splitlines()) == 1
    assert main(["category", "make-synthetic", "--out", str(tmp_path / "x"), "--size", "4"]) == 2
    bad = tmp_path / "bad.obj"
    bad.write_text("v 0 0 0\n")
    assert (
        main(["category", "make-synthetic", "--out", str(tmp_path / "y"), "--template", str(bad)])
        == 2
    )
    assert "bad.obj" in capsys.readouterr().err


def test_spec_is_generated_once_and_splits_differ(tmp_path):
    spec = "synthetic:quadruped?instances=4&size=32"
    train = load_image_set(spec, size=32)
    again = load_image_set(spec, size=32)
    np.testing.assert_array_equal(train.masks, again.masks)
    test = load_image_set(spec + "&split=test", size=32)
    assert not np.allclose(train.ground_truth["vertices"], test.ground_truth["vertices"])
    assert len(list((tmp_path / "cache" / "shapebench" / "synthetic").iterdir())) == 2


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("synthetic:cat", "unknown synthetic category"),
        ("synthetic:quadruped?colour=red", "unknown option"),
        ("synthetic:quadruped?split=val", "split"),
        ("synthetic:quadruped?instances=x", "bad number"),
        ("synthetic:quadruped?size=2", "size"),
    ],
)
def test_bad_specs(spec, fragment):
    with pytest.raises(DataError, match=fragment):
        parse_spec(spec)


def test_bad_generation_arguments():
    with pytest.raises(InputError):
        generate_category(category_template(), instances=0, size=32)
