"""`python main.py train | reconstruct | evaluate` end to end on tiny data, and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
