"""Category training on a tiny synthetic set: the databases and the dependency matrix move, the
multiplex narrows, checkpoints round-trip and resume exactly, failures keep the last good state,
and the command line drives it all."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.category.checkpoint import load_category_run
from engine.category.config import CategoryConfig
from engine.category.evaluate import evaluate_model
from engine.category.training import CategoryTrainer, resume_trainer
from engine.core.errors import CheckpointError, InputError
from engine.io.image_sets import load_image_set

SPEC = "synthetic:quadruped?instances=8&size=48"


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(**changes) -> CategoryConfig:
    base = dict(
        data=SPEC,
        size=32,
        iterations=6,
        network_steps=3,
        network_batch=4,
        warmup_epochs=1,
        batch_size=4,
        hypotheses=4,
        encoder_width=4,
        handles=6,
        eval_every=1000,
        render_faces=400,
    )
    base.update(changes)
    return CategoryConfig(**base)


def test_databases_and_dependency_matrix_move_and_the_multiplex_narrows():
    trainer = CategoryTrainer(tiny())
    assert trainer.num_hypotheses == 4 and trainer.warmup_steps == 2
    before = trainer.camera_db.detach().clone()
    events = []
    trainer.add_callback(events.append)
    trainer.run()
    assert trainer.state == "finished" and trainer.step == 2 + 6 + 3
    assert trainer.num_hypotheses == 2  # halved at 20 % of the main steps, floor 2
    assert any("warm-up end" in e.marks for e in events)
    assert any("2 hypotheses" in e.marks for e in events)
    assert [e.phase for e in events].count("network") == 3
    assert [e.phase for e in events if "network phase" in e.marks] == ["network"]
    assert float(trainer.deform_db.detach().abs().max()) > 0
    assert float((trainer.model.deformer.logits.detach() - trainer.initial_logits).abs().max()) > 0
    assert not torch.equal(trainer.camera_db.detach()[:, :7], before[:, :7])
    probs = trainer.probabilities
    torch.testing.assert_close(probs.sum(1), torch.ones(len(probs)))
    assert float(probs.max()) > 0.5  # no longer uniform
    main = [e for e in events if e.phase == "train"]
    assert {"mask", "boundary", "texture", "motion", "edge", "pull_camera"} <= set(main[-1].losses)
    assert {"pull_camera", "pull_deform", "texture"} <= set(events[-1].losses)


def test_learned_dependency_fits_better_than_frozen():
    # The databases alone against the databases plus A: A adds freedom, so the fit (mask L1 of
    # the database shapes under their cameras) must end lower with it than without.
    common = dict(
        iterations=25,
        network_steps=0,
        warmup_epochs=0,
        hypotheses=1,
        w_pull_camera=0.0,
        w_pull_deform=0.0,
        mirror=False,
        use_motion=False,
        use_texture=False,
        lr_cameras=5e-2,
        lr_deformations=5e-2,
        w_edge=1.0,
    )
    learned = CategoryTrainer(tiny(**common, lr_dependency=5e-2))
    frozen = CategoryTrainer(tiny(**common, lr_dependency=0.0))
    for t in (learned, frozen):
        t.run()
    tail = lambda t: np.mean([h["mask"] for h in t.history[-5:]])  # noqa: E731
    assert tail(learned) < tail(frozen)
    assert frozen.model.deformer.logits.grad is None
    torch.testing.assert_close(frozen.model.deformer.logits, frozen.initial_logits)


def test_the_network_phase_trains_only_the_network_towards_the_databases():
    trainer = CategoryTrainer(tiny(network_steps=40, lr=3e-3))
    trainer.run(until_step=trainer.warmup_steps + trainer.config.iterations)
    frozen = {
        "camera_db": trainer.camera_db.detach().clone(),
        "deform_db": trainer.deform_db.detach().clone(),
        "mirror_db": trainer.mirror_db.detach().clone(),
        "logits": trainer.model.deformer.logits.detach().clone(),
        "probabilities": trainer.probabilities.clone(),
    }
    head = trainer.model.camera_head.weight.detach().clone()
    trainer.run()
    assert trainer.state == "finished" and trainer.phase == "network"
    torch.testing.assert_close(trainer.camera_db.detach(), frozen["camera_db"], rtol=0, atol=0)
    torch.testing.assert_close(trainer.deform_db.detach(), frozen["deform_db"], rtol=0, atol=0)
    torch.testing.assert_close(trainer.mirror_db.detach(), frozen["mirror_db"], rtol=0, atol=0)
    torch.testing.assert_close(trainer.model.deformer.logits.detach(), frozen["logits"])
    torch.testing.assert_close(trainer.probabilities, frozen["probabilities"])
    assert not torch.equal(trainer.model.camera_head.weight.detach(), head)
    pulls = [h["pull_camera"] + 2 * h["pull_deform"] for h in trainer.history[-40:]]
    assert np.mean(pulls[-8:]) < 0.5 * np.mean(pulls[:8])
    assert trainer.opt_net.param_groups[0]["lr"] < 0.01 * 3e-3  # the cosine decay's end


def test_a_batch_without_visible_keypoints_reports_no_keypoint_loss():
    trainer = CategoryTrainer(tiny(iterations=2, network_steps=0))
    trainer.run(until_step=3)
    assert all("keypoints" in h for h in trainer.history)
    trainer.keypoints[..., 2] = 0  # every keypoint hidden: the term is 0 by definition
    trainer.run()
    assert "keypoints" not in trainer.history[-1] and trainer.state == "finished"


def test_a_config_saved_before_the_network_phase_loads_without_it():
    saved = CategoryConfig().to_dict()
    del saved["network_steps"]  # as in checkpoints written before the field existed
    assert CategoryConfig.from_dict(saved).network_steps == 0
    assert CategoryConfig.from_dict(CategoryConfig().to_dict()).network_steps == 1000
    with pytest.raises(InputError):
        CategoryConfig(network_steps=-1).validate()


def test_checkpoint_round_trip_and_exact_resume(tmp_path):
    straight = CategoryTrainer(tiny())
    straight.run()
    want = [h["total"] for h in straight.history]
    for stop in (5, 9):  # in the main steps and in the network phase
        first = CategoryTrainer(tiny())
        first.run(until_step=stop)
        path = tmp_path / "run.pt"
        first.save_checkpoint(path)
        resumed = resume_trainer(path)
        assert resumed.step == stop and resumed.num_hypotheses == first.num_hypotheses
        resumed.run()
        got = [h["total"] for h in resumed.history]
        np.testing.assert_allclose(got, want, rtol=1e-5)
    run = load_category_run(path)
    assert run.database_names == straight.database_names
    images = load_image_set(SPEC, size=32)
    rows = evaluate_model(run, images)
    assert set(rows) == {"predicted", "template", "fit"}
    assert rows["fit"]["iou_mean"] is not None and 0 <= rows["predicted"]["iou_mean"] <= 1
    assert rows["predicted"]["vertex_error"] is not None


def test_a_nan_loss_fails_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from engine.category import losses

    path = tmp_path / "auto.pt"
    trainer = CategoryTrainer(tiny(), autosave_path=path, autosave_every=2)
    trainer.run(until_step=4)
    good = path.read_bytes()
    monkeypatch.setattr(
        losses, "offset_loss", lambda offsets, scale: torch.full(offsets.shape[:1], float("nan"))
    )
    trainer.run()
    assert trainer.state == "failed" and "diverged" in trainer.error
    assert path.read_bytes() == good
    assert load_category_run(path).step == 4


def test_bad_settings_and_mismatched_keypoints():
    with pytest.raises(InputError, match="size"):
        tiny(size=8).validate()
    with pytest.raises(InputError, match="prune_at"):
        tiny(prune_at=(0.8, 0.2)).validate()
    from engine.category.template import category_template

    other = category_template(keypoints=None)
    other = type(other)(other.mesh, other.keypoint_names[:3], other.keypoint_vertices[:3], "z", "x")
    with pytest.raises(InputError, match="keypoint"):
        CategoryTrainer(tiny(), template=other)


def test_command_line_train_evaluate_reconstruct(tmp_path, capsys):
    from main import main

    out = tmp_path / "run.pt"
    args = [
        "category",
        "train",
        "--data",
        SPEC,
        "--size",
        "32",
        "--iterations",
        "3",
        "--network-steps",
        "2",
        "--handles",
        "6",
        "--hypotheses",
        "2",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert out.is_file() and "saved" in capsys.readouterr().out
    report = tmp_path / "eval.json"
    assert (
        main(
            [
                "category",
                "evaluate",
                "--checkpoint",
                str(out),
                "--data",
                SPEC,
                "--json",
                str(report),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "predicted" in table and "template" in table and "fit" in table
    doc = json.loads(report.read_text())
    assert set(doc["methods"]) == {"predicted", "template", "fit"}
    assert set(doc["methods"]["predicted"]) == {
        "iou_mean",
        "iou_median",
        "pck",
        "vertex_error",
        "camera_error_deg",
    }
    rec = tmp_path / "rec.npz"
    assert (
        main(
            ["category", "reconstruct", "--checkpoint", str(out), "--data", SPEC, "--out", str(rec)]
        )
        == 0
    )
    with np.load(rec) as z:
        assert z["vertices"].shape[0] == 8 and z["cameras"].shape == (8, 7)
        assert z["faces"].shape[1] == 3 and len(z["names"]) == 8
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["category", "evaluate", "--checkpoint", str(bad), "--data", SPEC]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "bad.pt" in err and len(err.strip().splitlines()) == 1
    assert (
        main(
            [
                "category",
                "train",
                "--data",
                str(tmp_path / "missing"),
                "--out",
                str(tmp_path / "x.pt"),
            ]
        )
        == 2
    )
    assert "missing" in capsys.readouterr().err


def test_a_prn_checkpoint_is_named_as_such(tmp_path):
    from engine.prn.config import TrainConfig
    from engine.prn.training import Trainer

    prn = tmp_path / "prn.pt"
    trainer = Trainer(TrainConfig(data="synthetic:human?frames=64", iterations=1, hidden=8))
    trainer.run()
    trainer.save_checkpoint(prn)
    with pytest.raises(CheckpointError, match="PRN checkpoint"):
        load_category_run(prn)


def test_masks_only_occluded_and_cut_silhouettes_with_a_large_textured_obj_template(tmp_path):
    """Real photographs give masks only, often occluded or cut by the image border, and users
    bring templates of thousands of vertices with vt and vn: none of it may crash or wreck
    training (finite losses, the render proxy decimates the template)."""
    import imageio.v3 as iio

    from engine.geometry.primitives import icosphere
    from engine.io.mesh import save_mesh

    v, f = icosphere(4)  # 2562 vertices, 5120 faces
    v = v * np.array([1.6, 0.5, 0.7])
    uv = np.stack([np.arctan2(v[:, 1], v[:, 0]) / (2 * np.pi) + 0.5, v[:, 2] * 0.5 + 0.5], 1)
    template = tmp_path / "blob.obj"
    save_mesh(template, v, f, uv=uv, uv_faces=f)
    text = template.read_text().replace("\nf ", "\nvn 0 0 1\nf ", 1)
    template.write_text(text)
    root = tmp_path / "photos" / "masks"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        mask = np.zeros((90, 120), np.uint8)
        cx, cy = 40 + 8 * i, 45
        yy, xx = np.mgrid[:90, :120]
        mask[((xx - cx) / 35.0) ** 2 + ((yy - cy) / 18.0) ** 2 < 1] = 255
        if i % 2 == 0:
            mask[30:60, cx - 5 : cx + 5] = 0  # an occluder across the body
        if i % 3 == 0:
            mask[:, :15] = 0
            mask[:, : rng.integers(5, 20)] = 255  # cut by the image border
        iio.imwrite(root / f"photo{i}.png", mask)
    config = tiny(
        data=str(root.parent),
        template=str(template),
        iterations=3,
        warmup_epochs=1,
        render_faces=600,
    )
    trainer = CategoryTrainer(config)
    assert trainer.images.images is None and not trainer.has_texture
    assert trainer.proxy.num_faces <= 600 + 20 and not trainer.proxy.is_identity
    trainer.run()
    assert trainer.state == "finished"
    assert all(np.isfinite(h["total"]) for h in trainer.history)
    assert trainer.template.mesh.uv is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")
def test_training_on_cuda_follows_the_cpu_run():
    cpu = CategoryTrainer(tiny(device="cpu"))
    cpu.run()
    gpu = CategoryTrainer(tiny(device="cuda"))
    gpu.run()
    assert gpu.state == "finished" and gpu.camera_db.device.type == "cuda"
    np.testing.assert_allclose(
        [h["total"] for h in gpu.history[:3]], [h["total"] for h in cpu.history[:3]], rtol=1e-3
    )
