"""`python main.py train | reconstruct | evaluate` end to end on tiny data, and bad input."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.io.keypoints import KeypointSequence, load_keypoints, save_keypoints

ROOT = Path(__file__).resolve().parents[1]


def _main(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SHAPEBENCH_DEVICE": "cpu"}
    return subprocess.run(
        [sys.executable, "main.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny sequence with ground truth, one without, and a checkpoint trained by the CLI."""
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    points3d = rng.normal(size=(40, 6, 3)) * np.array([1.0, 1.0, 0.3]) + 5.0
    data = folder / "seq.npz"
    save_keypoints(data, KeypointSequence(points2d=points3d[..., :2].copy(), points3d=points3d))
    no_gt = folder / "nogt.npz"
    save_keypoints(no_gt, KeypointSequence(points2d=points3d[..., :2].copy()))
    ckpt = folder / "run.pt"
    train = _main(
        "train", "--data", str(data), "--iterations", "6", "--hidden", "16", "--seed", "1",
        "--eval-every", "3", "--out", str(ckpt),
    )  # fmt: skip
    return {"folder": folder, "data": data, "no_gt": no_gt, "ckpt": ckpt, "train": train}


def test_train_writes_checkpoint_and_summary(files):
    result = files["train"]
    assert result.returncode == 0, result.stderr
    assert "trained 6 steps" in result.stdout
    assert "e3d" in result.stdout and "mpjpe" in result.stdout
    assert "6/6" in result.stderr  # the progress bar reached the end
    from engine.prn.checkpoint import load_checkpoint

    ckpt = load_checkpoint(files["ckpt"])
    assert ckpt.step == 6 and ckpt.config.hidden == 16 and ckpt.config.seed == 1
    assert set(ckpt.metrics) == {"e3d", "mpjpe"}


def test_reconstruct_writes_points3d_in_input_units(files):
    out = files["folder"] / "rec.npz"
    result = _main(
        "reconstruct",
        "--checkpoint",
        str(files["ckpt"]),
        "--data",
        str(files["data"]),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    rec = load_keypoints(out)
    src = load_keypoints(files["data"])
    assert rec.points3d.shape == (40, 6, 3)
    np.testing.assert_array_equal(rec.points2d, src.points2d)
    # xy of the prediction lie where the input is (input units, not normalised).
    assert np.abs(rec.points3d[..., :2] - src.points2d).mean() < 0.5 * np.abs(src.points2d).mean()


def test_evaluate_prints_prn_and_baselines(files):
    result = _main("evaluate", "--checkpoint", str(files["ckpt"]), "--data", str(files["data"]))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:]}
    assert {"PRN", "zero_depth"} <= set(rows)
    from engine.nrsfm.metrics import evaluate as reference
    from engine.prn.checkpoint import load_model
    from engine.prn.reconstruct import reconstruct

    model, _ = load_model(files["ckpt"])
    seq = load_keypoints(files["data"])
    expected = reference(reconstruct(model, seq.points2d), seq.points3d)
    assert float(rows["PRN"][0]) == pytest.approx(expected["mpjpe"], abs=1e-4)
    assert float(rows["PRN"][1]) == pytest.approx(expected["e3d"], abs=1e-4)


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("missing_data", "absent.npz"),
        ("bad_iterations", "--iterations"),
        ("text_checkpoint", "not a readable"),
        ("no_ground_truth", "points3d"),
        ("wrong_points", "6 points"),
        ("raw_pickle", "not a readable"),
        ("legacy_torch_file", "not a readable"),
        ("nothing_visible", "no point is visible"),
        ("no_usable_frame", "no frame has 2 or more distinct visible points"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(files, case, expect):
    folder = files["folder"]
    if case == "missing_data":
        args = ["train", "--data", str(folder / "absent.npz"), "--out", str(folder / "x.pt")]
    elif case == "bad_iterations":
        args = [
            "train",
            "--data",
            str(files["data"]),
            "--iterations",
            "0",
            "--out",
            str(folder / "x.pt"),
        ]
    elif case == "text_checkpoint":
        bad = folder / "bad.pt"
        bad.write_text("not a checkpoint")
        args = ["evaluate", "--checkpoint", str(bad), "--data", str(files["data"])]
    elif case == "no_ground_truth":
        args = ["evaluate", "--checkpoint", str(files["ckpt"]), "--data", str(files["no_gt"])]
    elif case in ("raw_pickle", "legacy_torch_file"):
        # torch.load warns about the pickle protocol of such files before refusing them.
        bad = folder / f"{case}.pt"
        if case == "raw_pickle":
            with open(bad, "wb") as fh:
                pickle.dump({"a": 1}, fh, protocol=4)
        else:
            torch.save({"a": 1}, bad, _use_new_zipfile_serialization=False, pickle_protocol=5)
        args = ["evaluate", "--checkpoint", str(bad), "--data", str(files["data"])]
    elif case in ("nothing_visible", "no_usable_frame"):
        seq = load_keypoints(files["data"])
        vis = np.zeros((seq.num_frames, seq.num_points), bool)
        if case == "no_usable_frame":
            vis[:, 0] = True  # one point per frame: nothing to normalise by
        hidden = folder / f"{case}.npz"
        save_keypoints(hidden, KeypointSequence(seq.points2d, seq.points3d, visibility=vis))
        args = ["train", "--data", str(hidden), "--iterations", "2", "--out", str(folder / "h.pt")]
    else:
        other = folder / "other.npz"
        save_keypoints(
            other, KeypointSequence(points2d=np.random.default_rng(1).normal(size=(5, 9, 2)))
        )
        args = [
            "reconstruct",
            "--checkpoint",
            str(files["ckpt"]),
            "--data",
            str(other),
            "--out",
            str(folder / "o.npz"),
        ]
    result = _main(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expect.lower() in lines[0].lower()
    assert "Traceback" not in result.stderr
    if case in ("nothing_visible", "no_usable_frame"):
        assert not (folder / "h.pt").exists()  # no checkpoint of a network that learned nothing


@pytest.mark.parametrize("command", ["evaluate", "reconstruct"])
def test_wrong_point_count_names_the_data_file_and_the_checkpoint(files, command):
    other = files["folder"] / "nine_points.npz"
    points3d = np.random.default_rng(2).normal(size=(5, 9, 3))
    save_keypoints(other, KeypointSequence(points2d=points3d[..., :2].copy(), points3d=points3d))
    args = [command, "--checkpoint", str(files["ckpt"]), "--data", str(other)]
    if command == "reconstruct":
        args += ["--out", str(files["folder"] / "o9.npz")]
    result = _main(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(other) in lines[0] and str(files["ckpt"]) in lines[0]
    assert "9 points" in lines[0] and "6 points" in lines[0]


def test_foreign_pickle_checkpoint_gives_only_the_error_line(files, capsys, recwarn):
    """In process (as the GUI loads checkpoints): torch's warning about the pickle protocol of
    a foreign file is not emitted, only the one-line error."""
    import main

    bad = files["folder"] / "raw_in_process.pt"
    with open(bad, "wb") as fh:
        pickle.dump({"a": 1}, fh, protocol=4)
    code = main.main(["evaluate", "--checkpoint", str(bad), "--data", str(files["data"])])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "not a readable" in err[0]
    assert [str(w.message) for w in recwarn] == []


def test_train_warns_when_alignments_do_not_converge(files):
    out = files["folder"] / "short_align.pt"
    result = _main(
        "train", "--data", str(files["data"]), "--iterations", "3", "--hidden", "8",
        "--align-max-iter", "1", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("warning: 3 of 3 Procrustes alignments")
    assert "within 1 sweep;" in last and "--align-max-iter" in last
    from engine.prn.checkpoint import load_checkpoint

    assert load_checkpoint(out).metrics["align_not_converged"] == 3
    # A run whose alignments converge prints no such warning.
    assert "warning" not in files["train"].stderr


def test_mesh_info_reports_quality_and_refuses_bad_files(tmp_path, capsys):
    from engine.geometry.primitives import icosphere
    from engine.io.mesh import save_mesh
    from main import main

    v, f = icosphere(1)
    path = tmp_path / "fin.obj"
    save_mesh(path, np.vstack([v, [[2.0, 0.0, 0.0]]]), np.vstack([f, [[f[0, 0], f[0, 1], len(v)]]]))
    assert main(["mesh", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "fin.obj" in out and "1 non-manifold edges" in out and "texture coordinates: none" in out
    bad = tmp_path / "bad.ply"
    bad.write_text("not a ply")
    assert main(["mesh", "info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "bad.ply" in err and len(err.splitlines()) == 1
