"""The Compare workspace in the real main window: metrics equal the CLI's, sorting, views, export."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PyQt6.QtCore import QPoint, Qt

from app import dialogs

REPO = Path(__file__).resolve().parents[2]
TRAIN_DATA = "synthetic:human?frames=256&seed=3"
EVAL_DATA = "synthetic:human?frames=48&split=test"


@pytest.fixture(autouse=True)
def _no_demo(monkeypatch, tmp_path):
    import app.workspaces.compare as compare
    import app.workspaces.training as training

    missing = tmp_path / "no_demo.pt"
    monkeypatch.setattr(training, "DEMO_CHECKPOINT", missing)
    monkeypatch.setattr(compare, "DEMO_CHECKPOINT", missing)


@pytest.fixture(autouse=True)
def errors(monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(
        dialogs, "show_error", lambda parent, title, exc: shown.append(f"{title}: {exc}")
    )
    return shown


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny trained PRN (hidden 32, 30 steps)."""
    from app.models.training_session import limit_torch_threads
    from engine.io.keypoints import load_dataset
    from engine.prn.config import TrainConfig
    from engine.prn.training import Trainer

    limit_torch_threads()  # as the app does: two torch threads crawl on a busy 2-core machine
    config = TrainConfig(
        data=TRAIN_DATA, iterations=30, hidden=32, batch_size=32, group_size=16, eval_every=10
    )
    trainer = Trainer(config, load_dataset(TRAIN_DATA))
    trainer.run()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def eval_file(tmp_path_factory) -> Path:
    """Held-out synthetic motion with ground truth, as a .npz both the CLI and the GUI read."""
    from engine.io.keypoints import load_dataset, save_keypoints

    path = tmp_path_factory.mktemp("data") / "heldout.npz"
    save_keypoints(path, load_dataset(EVAL_DATA))
    return path


@pytest.fixture
def workspace(main_window, qtbot, checkpoint, eval_file, errors, wait_worker):
    ws = main_window.workspace("Compare")
    main_window.show_workspace(ws)
    qtbot.waitExposed(ws)
    assert ws.load_data(str(eval_file)), errors
    worker = ws.add_checkpoint(str(checkpoint))
    assert worker is not None, errors
    wait_worker(worker, 60_000)
    # The classic NRSfM baseline takes seconds: only the CLI comparison computes it.
    worker = ws.compute(checkpoints=[], baselines=["zero_depth"])
    wait_worker(worker)
    assert not errors
    return ws


def parse_cli_table(text: str) -> dict[str, tuple[str, str]]:
    """``method -> (mpjpe text, e3D text)`` from the table `main.py evaluate` prints."""
    rows = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and all(re.fullmatch(r"-?\d+\.\d+", p) for p in parts[-2:]):
            rows[" ".join(parts[:-2])] = (parts[-2], parts[-1])
    return rows


def test_table_equals_the_cli_numbers(workspace, checkpoint, eval_file, wait_worker):
    from app.workspaces.compare import COL_E3D, COL_MPJPE, COL_NAME
    from engine.nrsfm.baselines import BASELINES

    worker = workspace.compute(checkpoints=[], baselines=None)  # every ticked baseline
    wait_worker(worker)

    result = subprocess.run(
        [
            sys.executable,
            "main.py",
            "evaluate",
            "--checkpoint",
            str(checkpoint),
            "--data",
            str(eval_file),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    cli = parse_cli_table(result.stdout)
    assert set(cli) == {"PRN", *BASELINES}, result.stdout
    table = workspace.table
    shown = {}
    for r in range(table.rowCount()):
        name = table.item(r, COL_NAME).text()
        shown["PRN" if name.startswith("PRN") else name] = (
            table.item(r, COL_MPJPE).text(),
            table.item(r, COL_E3D).text(),
        )
    assert shown == cli
    # The cells sort by the full-precision values their text was printed from.
    for name, values in workspace.table_values().items():
        assert values == pytest.approx(workspace.model.methods[name].metrics, rel=1e-12)


def test_table_sorts_numerically_and_rows_choose_views(workspace, qtbot):
    from app.workspaces.compare import COL_E3D, COL_MPJPE, COL_SHOW

    ws = workspace
    # Best first by default.
    e3d = [float(ws.table.item(r, COL_E3D).text()) for r in range(ws.table.rowCount())]
    assert e3d == sorted(e3d)
    for column in (COL_E3D, COL_MPJPE):
        header = ws.table.horizontalHeader()
        x = header.sectionViewportPosition(column) + header.sectionSize(column) // 2
        qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
        values = [float(ws.table.item(r, column).text()) for r in range(ws.table.rowCount())]
        assert values == sorted(values) or values == sorted(values, reverse=True)
    # Every method is shown next to the ground truth (at most three).
    shown = ws.model.shown
    assert 1 <= len(shown) <= 3
    assert ws.linked.count == 1 + len(shown)
    # Unticking a row removes its view.
    row = next(
        r
        for r in range(ws.table.rowCount())
        if ws.table.item(r, COL_SHOW).checkState() == Qt.CheckState.Checked
    )
    before = len(ws.model.shown)
    ws.table.item(row, COL_SHOW).setCheckState(Qt.CheckState.Unchecked)
    assert len(ws.model.shown) == before - 1
    assert ws.linked.count == 1 + len(ws.model.shown)


def test_numeric_item_sorts_by_value_not_text():
    from app.workspaces.compare import NumericItem

    items = [NumericItem(v, f"{v:g}") for v in (10.0, 9.0, 100.0)]
    assert [i.text() for i in sorted(items)] == ["9", "10", "100"]


def test_views_show_ground_truth_and_errors_on_the_same_frame(workspace):
    ws = workspace
    ws.model.set_frame(5)
    gt_view, method_view = ws.linked.views[:2]
    np.testing.assert_allclose(gt_view.points, ws.model.ground_truth_frame(5))
    name = ws.model.shown[0]
    points, errs = ws.model.method_frame(name, 5)
    np.testing.assert_allclose(method_view.points, points)
    np.testing.assert_allclose(errs, ws.model.methods[name].errors[5])
    assert "frame 5" in gt_view.title
    image = method_view.render_image().astype(int)
    assert (np.abs(image[..., 0] - image[..., 2]) > 80).sum() > 20  # error colour map visible
    # The cameras of all views are one object.
    cams = {id(v.plotter.renderer.GetActiveCamera()) for v in ws.linked.views}
    assert len(cams) == 1


def test_export_png_gif_mp4(workspace, tmp_path):
    ws = workspace
    png = ws.export_png(tmp_path / "compare.png")
    image = iio.imread(png)
    assert image.shape[1] == sum(v.render_image().shape[1] for v in ws.linked.views)
    ws.model.set_frame(2)
    assert ws.export_animation(tmp_path / "compare.gif", 3, 7, fps=5) == 5
    assert iio.imread(tmp_path / "compare.gif").shape[0] == 5
    assert ws.export_animation(tmp_path / "compare.mp4", 0, 5, fps=5) == 6
    assert iio.imread(tmp_path / "compare.mp4").shape[0] == 6
    assert ws.model.frame == 2  # the current frame is restored


def test_foreign_checkpoint_is_refused(workspace, tmp_path, errors):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    before = workspace.checkpoints()
    assert workspace.add_checkpoint(str(bad)) is None
    assert workspace.checkpoints() == before
    assert errors and str(bad) in errors[-1]


def test_demo_comparison_opens_when_the_tab_is_first_shown(
    main_window, qtbot, checkpoint, monkeypatch, errors
):
    import app.workspaces.compare as compare

    monkeypatch.setattr(compare, "DEMO_CHECKPOINT", checkpoint)
    ws = main_window.workspace("Compare")
    for name, check in ws.baseline_checks.items():
        check.setChecked(name == "zero_depth")  # keep the test quick
    assert ws.model.sequence is None  # nothing computed before the tab is shown
    main_window.show_workspace(ws)
    qtbot.waitUntil(lambda: len(ws.model.methods) == 2, timeout=60_000)
    assert ws.checkpoints() == [str(checkpoint)]
    assert ws.model.sequence.description["split"] == "test"
    assert ws.linked.count == 3
    assert not errors


def test_metrics_name_the_data_they_are_on(workspace, qtbot, errors):
    ws = workspace
    label = ws.data_label
    assert label.isVisible()
    assert "heldout.npz" in label.text() and "all 48 frames" in label.text(), label.text()
    assert ws.load_data(EVAL_DATA), errors
    text = label.text()
    assert f"on {EVAL_DATA}: held-out motions" in text and "all 48 frames" in text, text
