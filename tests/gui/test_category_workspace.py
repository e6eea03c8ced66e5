"""The Category tab in the real window: load a set, train a few steps with pause and resume,
inspect an instance, open the learned A in the Editor and move a handle, compute the learned
modes, and evaluate with the command line's numbers in the table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PyQt6.QtCore import Qt

pytestmark = pytest.mark.gui

SPEC = "synthetic:quadruped?instances=8&size=48"
SMALL = {
    "size": "32",
    "iterations": "8",
    "network_steps": "3",
    "network_batch": "4",
    "warmup_epochs": "1",
    "batch_size": "4",
    "hypotheses": "4",
    "encoder_width": "4",
    "handles": "6",
    "render_faces": "400",
    "eval_every": "1000",
}


@pytest.fixture
def category(main_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    ws = main_window.workspace("Category")
    main_window.show_workspace(ws)
    for name, value in SMALL.items():
        ws.form.fields[name].setText(value)
    ws.autosave_path.setText(str(tmp_path / "auto.pt"))
    with qtbot.waitSignal(ws.session.data_changed, timeout=120_000):
        ws.load_data(SPEC)
    yield ws
    ws.session.shutdown()
    torch.set_num_threads(threads)


def _image(label) -> np.ndarray:
    image = label.pixmap().toImage()
    ptr = image.constBits()
    ptr.setsize(image.sizeInBytes())
    return np.frombuffer(ptr, np.uint8).reshape(image.height(), image.bytesPerLine())


def test_train_pause_resume_inspect_edit_modes_and_evaluate(
    category, main_window, qtbot, wait_worker
):
    ws = category
    assert "8 images" in ws.data_info.text() and "ground truth" in ws.data_info.text()
    assert ws.start_button.isEnabled() and not ws.pause_button.isEnabled()
    qtbot.mouseClick(ws.start_button, Qt.MouseButton.LeftButton)
    assert ws.session.state == "running"
    qtbot.waitUntil(lambda: ws.session.trainer.step >= 2, timeout=60_000)
    qtbot.mouseClick(ws.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ws.session.trainer.state == "paused", timeout=30_000)
    paused_at = ws.session.trainer.step
    qtbot.wait(300)
    assert ws.session.trainer.step == paused_at and ws.resume_button.isEnabled()
    qtbot.mouseClick(ws.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ws.session.state == "finished", timeout=120_000)
    assert ws.session.trainer.step == ws.session.trainer.total_iterations
    assert ws.curves.curve_points("total") > 0
    assert "warm-up end" in [text for _, text in ws.curves.marks]
    assert any("hypotheses" in text for _, text in ws.curves.marks)
    assert ws.progress.value() == ws.progress.maximum()

    # Instance page: image with the predicted outline and keypoints, hypotheses around the mesh.
    ws.pages.setCurrentIndex(1)
    # The live refresh during training may have drawn the outline already: start from the plain
    # input so that the comparison below sees what refresh_instance adds.
    ws._inspect_timer.stop()
    ws._show_inputs(ws.instance_slider.value(), None)
    plain = _image(ws.image_view).copy()
    ws.refresh_instance()
    view = ws._view
    assert view is not None and view.hypotheses is not None
    assert len(view.probabilities) == ws.session.trainer.num_hypotheses
    assert "Camera hypotheses" in ws.hypotheses_label.text()
    outlined = _image(ws.image_view)
    assert not np.array_equal(plain, outlined)
    assert "hypotheses" in ws.novel_view.plotter.actors
    assert view.vertex_errors is not None and ws.truth_view._scalar_title is not None

    # Evaluate: the table holds the command line's numbers.
    from engine.category.evaluate import evaluate_model

    wait_worker(ws.evaluate())
    rows = evaluate_model(ws.session.trainer, ws.session.images)
    assert ws.table.rowCount() == 3
    cells = {ws.table.item(r, 0).text(): ws.table.item(r, 1).text() for r in range(3)}
    assert cells["predicted"] == f"{rows['predicted']['iou_mean']:.4f}"
    assert cells["fit"] == f"{rows['fit']['iou_mean']:.4f}"

    # Open in Editor: the learned A, the instance's offsets; a handle move changes the pixels.
    editor = main_window.workspace("Editor")
    with qtbot.waitSignal(editor.session.mesh_changed, timeout=60_000):
        assert ws.open_in_editor()
    learned = ws.session.trainer.model.deformer.A.detach().numpy()
    np.testing.assert_allclose(editor.session.basis.dependency, learned, rtol=1e-6, atol=1e-9)
    assert editor.session.initial_dependency is not None
    qtbot.wait(100)
    before = editor.view.image().copy()
    offsets = editor.session.offsets.copy()
    offsets[0] += 0.3 * np.ptp(editor.session.vertices, axis=0).max()
    editor.session.apply_offsets(offsets)
    editor.view._render_now()
    assert np.abs(editor.view.image().astype(int) - before.astype(int)).sum() > 0

    # Explore modes: the Modes tab computes the PCA of the learned deformations.
    main_window.show_workspace(ws)
    modes = main_window.workspace("Modes")
    with qtbot.waitSignal(modes.session.modes_changed, timeout=120_000):
        assert ws.explore_modes()
    assert modes.session.num_modes >= 1 and "learned deformations" in modes.session.data.description


def test_bad_folder_shows_one_dialog_and_keeps_the_loaded_set(
    category, qtbot, tmp_path, monkeypatch
):
    from app import dialogs

    shown = []
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, exc: shown.append(str(exc)))
    bad = tmp_path / "set"
    (bad / "masks").mkdir(parents=True)
    (bad / "masks" / "a.png").write_bytes(b"not a png")
    before = category.session.images
    category.load_data(str(bad))
    qtbot.waitUntil(lambda: len(shown) == 1, timeout=30_000)
    assert "a.png" in shown[0]
    assert category.session.images is before


def test_main_window_routes_a_category_checkpoint_to_the_category_tab(
    category, main_window, qtbot, tmp_path, monkeypatch
):
    from app import dialogs
    from engine.category.config import CategoryConfig
    from engine.category.training import CategoryTrainer

    shown = []
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, exc: shown.append(str(exc)))
    config = CategoryConfig(
        data=SPEC,
        size=32,
        iterations=2,
        network_steps=2,
        network_batch=4,
        warmup_epochs=0,
        batch_size=4,
        hypotheses=2,
        encoder_width=4,
        handles=6,
        render_faces=400,
    )
    trainer = CategoryTrainer(config, category.session.images)
    trainer.run()
    path = tmp_path / "cat.pt"
    trainer.save_checkpoint(path)
    with qtbot.waitSignal(category.session.run_changed, timeout=60_000):
        main_window.open_checkpoint(path)
    qtbot.wait(200)
    assert category.session.run is not None and category.session.state == "loaded"
    assert shown == []  # no workspace tried to read it as a PRN checkpoint
    assert category.form.fields["iterations"].text() == "2"


def test_default_autosaves_are_in_the_user_data_folder_not_the_working_directory(
    main_window, tmp_path
):
    for tab in ("Category", "Training"):
        path = Path(main_window.workspace(tab).autosave_path.text())
        assert path.parent == tmp_path / "data" / "shapebench" / "autosave"
        assert path.parent.is_dir()


def test_an_unwritable_data_folder_does_not_stop_the_app(tmp_path, monkeypatch):
    from app.paths import autosave_file

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
    assert autosave_file("a.pt") == blocker / "shapebench" / "autosave" / "a.pt"
