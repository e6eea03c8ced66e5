"""MeshSession without a window: edits, exact undo/redo/reset, handle sets, failures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from app.models.mesh_session import DEMO_TEMPLATE, MeshSession, _prepare
from engine.core.errors import InputError
from engine.deform.solve import laplacian_solve
from engine.geometry.laplacian import cotangent_laplacian
from engine.geometry.primitives import icosphere
from engine.io.mesh import Mesh, load_mesh


def _ready_session(mesh: Mesh, k: int = 8) -> MeshSession:
    session = MeshSession()
    session.install(*_prepare(mesh, k, None, lambda f, m: None, lambda: False))
    return session


@pytest.fixture(scope="module")
def demo() -> Mesh:
    return load_mesh(DEMO_TEMPLATE)


@pytest.fixture
def session(demo) -> MeshSession:
    return _ready_session(demo)


def direct_solve(session: MeshSession) -> np.ndarray:
    """The engine's direct solve for the session's current handle targets (independent of
    the editing basis): V = argmin |LV - LT|^2 + |AV - H|^2 with H = A T + offsets."""
    t = torch.from_numpy(session.mesh.vertices)
    f = torch.from_numpy(session.mesh.faces)
    a = torch.from_numpy(session.basis.dependency)
    h = a @ t + torch.from_numpy(session.offsets)
    return laplacian_solve(cotangent_laplacian(t, f), a, t, h).numpy()


def test_fresh_session_shows_the_template(session, demo):
    np.testing.assert_array_equal(session.vertices, demo.vertices)
    assert session.num_handles == 8
    np.testing.assert_allclose(session.handle_targets(), session.basis.dependency @ demo.vertices)


def test_drag_edit_undo_redo_reset_are_exact(session, demo):
    original = session.vertices.copy()
    session.select([2, 5])
    session.begin_drag()
    for step in range(1, 6):
        session.drag_to([0.02 * step, 0.0, -0.01 * step])  # live updates
    session.end_drag()
    assert session.can_undo() and not session.can_redo()
    np.testing.assert_allclose(session.offsets[[2, 5]], [[0.1, 0, -0.05]] * 2)
    assert np.all(session.offsets[[0, 1, 3, 4, 6, 7]] == 0)
    edited = session.vertices.copy()
    assert np.abs(edited - original).max() > 0.01
    np.testing.assert_allclose(edited, direct_solve(session), rtol=0, atol=1e-9)

    session.undo()
    np.testing.assert_array_equal(session.vertices, original)
    assert session.can_redo()
    session.redo()
    np.testing.assert_array_equal(session.vertices, edited)

    session.set_offset([1], [0.0, 0.1, 0.0])  # numeric entry: one more undo step
    session.reset()
    np.testing.assert_array_equal(session.vertices, demo.vertices)
    session.undo()
    assert session.offsets[1, 1] == 0.1
    session.undo()
    np.testing.assert_array_equal(session.vertices, edited)


def test_selection_toggles_with_add(session):
    session.select([3])
    session.select([1], add=True)
    assert session.selection == (3, 1)
    session.select([3], add=True)
    assert session.selection == (1,)
    with pytest.raises(IndexError):
        session.select([99])


def test_handle_set_round_trip_and_refusal_on_another_mesh(session, demo, tmp_path):
    session.set_offset([0, 4], [0.05, -0.02, 0.1])
    edited = session.vertices.copy()
    path = tmp_path / "set.json"
    session.save_handle_set(path)
    data = json.loads(path.read_text())
    assert data["num_handles"] == 8 and len(data["handle_ids"]) == 8

    fresh = _ready_session(demo)
    assert fresh.load_handle_set(path) is None  # same ids: applied at once
    np.testing.assert_array_equal(fresh.vertices, edited)

    other = _ready_session(Mesh(*icosphere(2)))
    before = other.vertices.copy()
    with pytest.raises(InputError, match="another mesh"):
        other.load_handle_set(path)
    np.testing.assert_array_equal(other.vertices, before)

    # A learned A is tied to its handles: a set with other handles is refused, not applied
    # through a rebuilt default A.
    learned = _ready_session(demo)
    learned.initial_dependency = np.full_like(learned.basis.dependency, 0.1)
    data["handle_ids"] = data["handle_ids"][:-1]
    data["offsets"] = data["offsets"][:-1]
    data["num_handles"] = len(data["handle_ids"])
    fewer = tmp_path / "fewer.json"
    fewer.write_text(json.dumps(data))
    before = learned.vertices.copy()
    with pytest.raises(InputError, match="learned dependency matrix") as info:
        learned.load_handle_set(fewer)
    assert info.value.field == "handle_ids" and not learned.is_busy
    np.testing.assert_array_equal(learned.vertices, before)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("{not json", None),
        ('{"format": "something-else"}', "format"),
        ('{"format": "shapebench-handle-set", "version": 1}', "mesh_hash"),
    ],
)
def test_bad_handle_set_files_name_the_problem(session, tmp_path, text, field):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        session.load_handle_set(path)
    assert str(path) in str(info.value)
    if field:
        assert info.value.field == field


def test_failed_open_keeps_the_current_mesh(qtbot, session, tmp_path):
    bad = tmp_path / "broken.ply"
    bad.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nend_header\n1 2\n")
    before = session.vertices.copy()
    with qtbot.waitSignal(session.failed, timeout=20_000) as blocker:
        session.open(bad)
    assert str(bad) in str(blocker.args[0])
    assert not session.is_busy
    np.testing.assert_array_equal(session.vertices, before)


def test_open_in_background_then_reinitialise(qtbot, demo):
    session = MeshSession()
    busy = []
    session.busy.connect(lambda b, m: busy.append(b))
    with qtbot.waitSignal(session.mesh_changed, timeout=30_000):
        session.open(demo, num_handles=5)
    assert session.num_handles == 5 and busy == [True, False]
    with qtbot.waitSignal(session.mesh_changed, timeout=30_000):
        session.set_num_handles(7)
    assert session.num_handles == 7 and not session.can_undo()


def test_large_meshes_are_prepared_in_a_process_that_cancel_stops(qtbot, monkeypatch):
    # The factorisation holds the GIL, so large meshes go to a child process; force that
    # path on a small mesh.
    import app.models.mesh_session as mesh_session

    monkeypatch.setattr(mesh_session, "PROCESS_THRESHOLD", 0)
    mesh = Mesh(*icosphere(2))
    session = MeshSession()
    with qtbot.waitSignal(session.mesh_changed, timeout=60_000):
        session.open(mesh, num_handles=6)
    reference = _ready_session(mesh, 6)
    np.testing.assert_array_equal(session.handle_ids, reference.handle_ids)
    session.set_offset([2], [0.1, 0.2, 0.0])
    reference.set_offset([2], [0.1, 0.2, 0.0])
    np.testing.assert_allclose(session.vertices, reference.vertices, rtol=0, atol=1e-12)

    before = session.vertices.copy()
    worker = session.open(mesh, num_handles=9)
    with qtbot.waitSignal(worker.cancelled, timeout=30_000):
        session.cancel()
    assert not session.is_busy and session.num_handles == 6
    np.testing.assert_array_equal(session.vertices, before)


def test_initial_dependency_rows_and_their_change(session):
    from app.models.mesh_session import symmetric_range

    # A plain mesh holds no initial A: its rows are refused with the field named.
    assert not session.has_initial_dependency
    with pytest.raises(InputError) as info:
        session.influence_change(0)
    assert info.value.field == "initial_dependency"
    np.testing.assert_allclose(
        session.log_influence(1), np.log10(np.maximum(session.influence(1), 1e-300))
    )

    learned = session.basis.dependency
    initial = np.full_like(learned, 1.0 / learned.shape[1])
    session.initial_dependency = initial  # as install() sets it for a learned A
    np.testing.assert_allclose(session.log_influence(2, initial=True), np.log10(initial[2]))
    np.testing.assert_allclose(session.influence_change(2), learned[2] - initial[2])
    # An initial A of another shape is refused before anything starts.
    with pytest.raises(InputError, match="shape"):
        session.open(
            session.mesh,
            handle_ids=session.handle_ids,
            dependency=learned,
            initial_dependency=initial[:-1],
        )
    assert not session.is_busy

    lo, hi = symmetric_range(np.array([-0.5, 0.01, -0.02, 0.0] + [0.001] * 200))
    assert lo == -hi and 0.001 < hi < 0.05  # the one large change saturates
    assert symmetric_range(np.zeros(10)) == (-1.0, 1.0)
