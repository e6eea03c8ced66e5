"""Tests for engine.io.mesh: quirky OBJ forms, PLY/STL/VTK round trips, and every error message."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from engine.core.errors import MeshError
from engine.geometry.primitives import icosphere
from engine.io.mesh import Mesh, load_mesh, mesh_hash, save_mesh, validate_mesh

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

SQUARE_V = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def test_obj_plain_triangles(tmp_path):
    p = write(tmp_path, "a.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    mesh = load_mesh(p)
    assert isinstance(mesh, Mesh)
    assert mesh.vertices.dtype == np.float64 and mesh.faces.dtype == np.int64
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2]])
    assert mesh.path == str(p)


@pytest.mark.parametrize(
    "face_line",
    [
        "f 1/1/ 2/2/ 3/3/",  # empty normal field
        "f 1/1 2/2 3/3",  # v/vt
        "f 1//1 2//2 3//3",  # v//vn
        "f 1/1/1 2/2/2 3/3/3",  # v/vt/vn
        "f -3 -2 -1",  # relative indices
        "f -3/-3/ -2/-2/ -1/-1/",  # relative with empty fields
    ],
)
def test_obj_face_forms(tmp_path, face_line):
    text = "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nvn 0 0 1\n" + face_line + "\n"
    mesh = load_mesh(write(tmp_path, "f.obj", text))
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2]])


def test_obj_quads_ngons_fan_triangulated(tmp_path):
    text = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0.5 1.5 0\nf 1 2 3 4\nf 1 3 5 4 2\n"
    mesh = load_mesh(write(tmp_path, "q.obj", text))
    np.testing.assert_array_equal(
        mesh.faces, [[0, 1, 2], [0, 2, 3], [0, 2, 4], [0, 4, 3], [0, 3, 1]]
    )


def test_obj_quirks_comments_materials_colours_crlf_continuation(tmp_path):
    text = (
        "# exported by a tool\r\n"
        "mtllib missing_file.mtl\r\n"
        "o thing\r\ng group1\r\ns off\r\nusemtl skin\r\n"
        "v 0 0 0 1.0 0.5 0.25\r\n"  # vertex colour after xyz
        "v 1 0 0 # trailing comment\r\n"
        "v 1 1 0\r\n"
        "v 0 1 \\\r\n0\r\n"  # backslash continuation
        "vn 0 0 1\r\nvp 0.5\r\nl 1 2\r\n"
        "f 1 2 3 \\\r\n 4\r\n"
        "s 1\r\n"
    )
    mesh = load_mesh(write(tmp_path, "quirks.obj", text))
    np.testing.assert_array_equal(mesh.vertices, SQUARE_V)
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [0, 2, 3]])


def test_obj_keeps_unreferenced_vertices(tmp_path):
    text = "v 9 9 9\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 2 3 4\n"
    mesh = load_mesh(write(tmp_path, "u.obj", text))
    assert mesh.vertices.shape == (4, 3)
    np.testing.assert_array_equal(mesh.faces, [[1, 2, 3]])


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 0 1 2\n", 4, "index 0"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n", 4, "out of range"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf -4 -2 -1\n", 4, "before the first vertex"),
        ("v 0 0 0\nv 1 0\nv 0 1 0\nf 1 2 3\n", 2, "expected 'v x y z'"),
        ("v 0 0 0\nv 1 zero 0\nv 0 1 0\nf 1 2 3\n", 2, "three numbers"),
        ("v 0 0 0\nv 1 nan 0\nv 0 1 0\nf 1 2 3\n", 2, "NaN"),
        ("v 0 0 0\nv 1 inf 0\nv 0 1 0\nf 1 2 3\n", 2, "NaN or infinite"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2\n", 4, "at least 3"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 a 3\n", 4, "vertex index"),
    ],
)
def test_obj_errors_name_file_and_line(tmp_path, text, line, fragment):
    p = write(tmp_path, "bad.obj", text)
    with pytest.raises(MeshError) as info:
        load_mesh(p)
    msg = str(info.value)
    assert f"{p}:{line}" in msg
    assert fragment in msg
    assert info.value.line == line


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("empty.obj", "", "empty"),
        ("blank.obj", "  \n\n", "empty"),
        ("nofaces.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n", "no faces"),
        ("noverts.obj", "# nothing\ng x\n", "no vertices"),
        ("garbage.obj", bytes(range(256)) * 8, "binary data"),
        ("garbage.ply", b"\x00\x01garbage" * 50, "not a PLY file"),
        ("garbage.stl", b"\x13\x37" * 30, "not an STL file"),
        ("mesh.xyz", "v 0 0 0\n", "unknown mesh file type"),
        ("noext", "v 0 0 0\n", "unknown mesh file type"),
    ],
)
def test_file_level_errors(tmp_path, name, content, fragment):
    p = write(tmp_path, name, content)
    with pytest.raises(MeshError) as info:
        load_mesh(p)
    assert str(p) in str(info.value)
    assert fragment in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(MeshError, match="file not found"):
        load_mesh(tmp_path / "nope.obj")
    with pytest.raises(MeshError, match="not a regular file"):
        load_mesh(_dir_with_suffix(tmp_path))


def _dir_with_suffix(tmp_path: Path) -> Path:
    d = tmp_path / "folder.obj"
    d.mkdir()
    return d


def test_validate_mesh_errors():
    with pytest.raises(MeshError, match=r"shape \(N, 3\)"):
        validate_mesh(np.zeros((4, 2)), [[0, 1, 2]])
    with pytest.raises(MeshError, match=r"shape \(F, 3\)"):
        validate_mesh(SQUARE_V, [[0, 1, 2, 3]])
    with pytest.raises(MeshError, match="out of range"):
        validate_mesh(SQUARE_V, [[0, 1, 4]])
    with pytest.raises(MeshError, match="out of range"):
        validate_mesh(SQUARE_V, [[0, -1, 2]])
    with pytest.raises(MeshError, match="NaN"):
        validate_mesh(np.where(np.eye(4, 3) > 0, np.nan, 0.0), [[0, 1, 2]])
    with pytest.raises(MeshError, match="no faces"):
        validate_mesh(SQUARE_V, np.zeros((0, 3), dtype=int))
    with pytest.raises(MeshError, match="integers"):
        validate_mesh(SQUARE_V, [[0, 1, 2.5]])
    with pytest.raises(MeshError, match="field 'vertices'"):
        validate_mesh([["a", "b", "c"]] * 3, [[0, 1, 2]])
    ok = validate_mesh(SQUARE_V.astype(np.float32), np.array([[0, 1, 2]], dtype=np.int32))
    assert ok.vertices.dtype == np.float64 and ok.faces.dtype == np.int64


@pytest.mark.parametrize("suffix", [".ply", ".obj"])
def test_round_trip_exact(tmp_path, suffix):
    v, f = icosphere(2)
    rng = np.random.default_rng(0)
    v = v * rng.uniform(0.1, 1e3) + rng.normal(size=v.shape) * 1e-7
    p = tmp_path / f"m{suffix}"
    save_mesh(p, v, f)
    mesh = load_mesh(p)
    np.testing.assert_allclose(mesh.vertices, v, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(mesh.faces, f)
    assert mesh_hash(mesh.vertices, mesh.faces) == mesh_hash(v, f)


def test_stl_round_trip_merges_corners(tmp_path):
    v, f = icosphere(1)
    p = tmp_path / "m.stl"
    save_mesh(p, v, f)
    mesh = load_mesh(p)
    assert mesh.vertices.shape == v.shape
    # same triangles corner by corner (vertex numbering follows first appearance in the file)
    np.testing.assert_allclose(mesh.vertices[mesh.faces], v[f], atol=1e-6)
    edges = np.sort(np.concatenate([mesh.faces[:, :2], mesh.faces[:, 1:], mesh.faces[:, ::2]]), 1)
    assert len(np.unique(edges, axis=0)) == 120  # connected again: 120 shared edges


def test_ascii_stl(tmp_path):
    text = (
        "solid s\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 1 1 0\n"
        "endloop\nendfacet\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 1 0\n"
        "vertex 0 1 0\nendloop\nendfacet\nendsolid s\n"
    )
    mesh = load_mesh(write(tmp_path, "a.stl", text))
    np.testing.assert_array_equal(mesh.vertices, SQUARE_V)
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [0, 2, 3]])


def test_binary_stl_nan_rejected(tmp_path):
    rec = struct.pack("<12fH", 0, 0, 1, 0, 0, 0, 1, 0, 0, float("nan"), 1, 0, 0)
    p = write(tmp_path, "nan.stl", b" " * 80 + struct.pack("<I", 1) + rec)
    with pytest.raises(MeshError, match="NaN"):
        load_mesh(p)


def test_ascii_ply_with_quads_colours_and_extra_elements(tmp_path):
    text = (
        "ply\nformat ascii 1.0\ncomment made by hand\nelement vertex 4\nproperty float x\n"
        "property float y\nproperty float z\nproperty uchar red\nelement face 1\n"
        "property list uchar int vertex_indices\nelement edge 1\nproperty int vertex1\n"
        "property int vertex2\nend_header\n0 0 0 255\n1 0 0 0\n1 1 0 0\n0 1 0 0\n4 0 1 2 3\n"
        "0 1\n"
    )
    mesh = load_mesh(write(tmp_path, "a.ply", text))
    np.testing.assert_array_equal(mesh.vertices, SQUARE_V)
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [0, 2, 3]])


def test_binary_ply_big_endian_mixed_polygons(tmp_path):
    header = (
        b"ply\nformat binary_big_endian 1.0\nelement vertex 5\nproperty double x\n"
        b"property double y\nproperty double z\nelement face 2\n"
        b"property list uchar uint vertex_index\nend_header\n"
    )
    verts = np.vstack([SQUARE_V, [[0.5, 1.5, 0.0]]])
    body = verts.astype(">f8").tobytes()
    body += struct.pack(">B4I", 4, 0, 1, 2, 3) + struct.pack(">B3I", 3, 3, 2, 4)
    mesh = load_mesh(write(tmp_path, "b.ply", header + body))
    np.testing.assert_array_equal(mesh.vertices, verts)
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [0, 2, 3], [3, 2, 4]])


def test_binary_ply_fixed_quads_fast_path(tmp_path):
    header = (
        b"ply\nformat binary_little_endian 1.0\nelement vertex 4\nproperty float x\n"
        b"property float y\nproperty float z\nelement face 1\n"
        b"property list uchar int vertex_indices\nend_header\n"
    )
    body = SQUARE_V.astype("<f4").tobytes() + struct.pack("<B4i", 4, 0, 1, 2, 3)
    mesh = load_mesh(write(tmp_path, "q.ply", header + body))
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [0, 2, 3]])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
            "property float z\nend_header\n0 0 0\n1 0 0\n0 1 0\n",
            "no faces",
        ),
        (
            "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
            "property float z\nelement face 1\nproperty list uchar int vertex_indices\n"
            "end_header\n0 0 0\n1 0 0\n",
            "ends inside element 'vertex'",
        ),
        (
            "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
            "property float z\nelement face 1\nproperty list uchar int vertex_indices\n"
            "end_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n",
            "out of range",
        ),
        (
            "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
            "property float z\nelement face 1\nproperty list uchar int vertex_indices\n"
            "end_header\n0 0 0\n1 x 0\n0 1 0\n3 0 1 2\n",
            "malformed 'vertex' row",
        ),
        (
            "ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\n"
            "property float y\nproperty float z\nelement face 1\n"
            "property list uchar int vertex_indices\nend_header\n\x00\x00",
            "ends inside",
        ),
        ("ply\nformat weird 1.0\nend_header\n", "expected 'format"),
        (
            "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
            "element face 1\nproperty list uchar int vertex_indices\nend_header\n",
            "lacks properties z",
        ),
    ],
)
def test_ply_errors(tmp_path, text, fragment):
    p = write(tmp_path, "bad.ply", text)
    with pytest.raises(MeshError) as info:
        load_mesh(p)
    assert fragment in str(info.value)
    assert str(p) in str(info.value)


def test_ply_error_reports_body_line(tmp_path):
    text = (
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
        "property float z\nelement face 1\nproperty list uchar int vertex_indices\n"
        "end_header\n0 0 0\n1 x 0\n0 1 0\n3 0 1 2\n"
    )
    with pytest.raises(MeshError) as info:
        load_mesh(write(tmp_path, "bad.ply", text))
    assert info.value.line == 11


def test_vtk_and_vtp_via_pyvista(tmp_path):
    pv = pytest.importorskip("pyvista")
    v, f = icosphere(1)
    cells = np.hstack([np.full((len(f), 1), 3), f]).ravel()
    poly = pv.PolyData(v, cells)
    for suffix in (".vtk", ".vtp"):
        p = tmp_path / f"m{suffix}"
        poly.save(str(p))
        mesh = load_mesh(p)
        np.testing.assert_allclose(mesh.vertices, v, rtol=1e-12)
        np.testing.assert_array_equal(mesh.faces, f)
    bad = write(tmp_path, "bad.vtp", "<VTKFile>not really</VTKFile>")
    with pytest.raises(MeshError) as info:
        load_mesh(bad)
    assert str(bad) in str(info.value)


def test_save_errors(tmp_path):
    with pytest.raises(MeshError, match="cannot write mesh type"):
        save_mesh(tmp_path / "m.vtk", SQUARE_V, [[0, 1, 2]])
    with pytest.raises(MeshError, match="cannot write file"):
        save_mesh(tmp_path / "missing_dir" / "m.ply", SQUARE_V, [[0, 1, 2]])
    with pytest.raises(MeshError, match="out of range"):
        save_mesh(tmp_path / "m.obj", SQUARE_V, [[0, 1, 9]])
    assert list(tmp_path.iterdir()) == []


def test_mesh_hash_sensitivity():
    v, f = icosphere(1)
    h = mesh_hash(v, f)
    assert len(h) == 64 and h == mesh_hash(v.astype(np.float32).astype(np.float64) * 0 + v, f)
    v2 = v.copy()
    v2[3, 1] += 1e-15
    assert mesh_hash(v2, f) != h
    assert mesh_hash(v, f[:, [0, 2, 1]]) != h


@pytest.mark.parametrize("name", ["horse.obj", "cow.obj"])
def test_shared_templates(name):
    path = SHARED_DATA / "templates" / name
    if not path.exists():
        pytest.skip(f"reference data {path} not present (only in the team's workspace)")
    mesh = load_mesh(path)
    assert mesh.vertices.shape == (642, 3)
    assert mesh.faces.shape == (1280, 3)
    # closed genus-0 template: every edge shared by exactly two faces
    edges = np.sort(
        np.concatenate([mesh.faces[:, [0, 1]], mesh.faces[:, [1, 2]], mesh.faces[:, [2, 0]]]),
        axis=1,
    )
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)


# ------------------------------------------------------------------ texture coordinates


def test_obj_keeps_texture_coordinates_with_face_corners(tmp_path):
    path = tmp_path / "quad.obj"
    path.write_text(
        "mtllib missing.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1 0\nvn 0 0 1\n"
        "f 1/4/1 2/3/1 3/2/1 4/1/1\n"
    )
    mesh = load_mesh(path)
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [0, 2, 3]])
    # The quad's corners name vt 4, 3, 2, 1: the fan keeps each corner's own vt.
    np.testing.assert_array_equal(mesh.uv_faces, [[3, 2, 1], [3, 1, 0]])
    np.testing.assert_array_equal(mesh.uv[3], [0.0, 1.0])


def test_obj_texture_relative_indices_and_round_trip(tmp_path):
    path = tmp_path / "tri.obj"
    path.write_text(
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0.1 0.2\nvt 0.3 0.4\nvt 0.5 0.6\nf -3/-3 -2/-2 -1/-1\n"
    )
    mesh = load_mesh(path)
    np.testing.assert_array_equal(mesh.uv_faces, [[0, 1, 2]])
    out = tmp_path / "out.obj"
    save_mesh(out, mesh.vertices, mesh.faces, uv=mesh.uv, uv_faces=mesh.uv_faces)
    again = load_mesh(out)
    np.testing.assert_array_equal(again.uv, mesh.uv)
    np.testing.assert_array_equal(again.uv_faces, mesh.uv_faces)


def test_obj_partly_textured_faces_drop_uv_and_bad_uv_index_named(tmp_path):
    path = tmp_path / "mixed.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nvt 0 0\nf 1/1 2/1 3/1\nf 2 4 3\n")
    mesh = load_mesh(path)
    assert mesh.uv is None and mesh.uv_faces is None
    bad = tmp_path / "bad.obj"
    bad.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2/7 3/1\n")
    with pytest.raises(MeshError, match=r"bad\.obj:5.*texture index 7"):
        load_mesh(bad)


# ------------------------------------------------------------------------ quality report


def _tetra(offset=(0.0, 0.0, 0.0)):
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float) + offset
    f = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]])
    return v, f


def test_quality_of_clean_and_open_meshes():
    v, f = icosphere(1)
    q = load_like(v, f).quality()
    assert q.is_clean and q.components == 1 and "closed manifold" in q.summary()
    q = load_like(v, f[1:]).quality()
    assert q.boundary_loops == 1 and q.boundary_edges == 3 and not q.is_clean


def test_quality_reports_two_tetrahedra_sharing_an_edge():
    v1, f1 = _tetra()
    # A second tetrahedron reusing the edge (0, 1) of the first and two vertices of its own.
    v2 = np.array([[0.5, -1.0, 0.0], [0.5, -0.5, -1.0]])
    v = np.vstack([v1, v2])
    f2 = np.array([[0, 1, 4], [0, 5, 1], [1, 5, 4], [0, 4, 5]])
    q = load_like(v, np.vstack([f1, f2])).quality()
    assert q.non_manifold_edges == 1
    assert "non-manifold" in q.summary()


def test_quality_reports_a_fin_triangle_degenerate_faces_and_components():
    v, f = _tetra()
    fin_v = np.vstack([v, [[0.5, 0.0, -1.0]]])
    q = load_like(fin_v, np.vstack([f, [[0, 1, 4]]])).quality()
    assert q.non_manifold_edges == 1 and q.boundary_loops == 1
    v2, f2 = _tetra((5.0, 0.0, 0.0))
    both = load_like(np.vstack([v, v2, [[9, 9, 9]]]), np.vstack([f, f2 + 4, [[0, 0, 1]]]))
    q = both.quality()
    assert q.components == 2 and q.degenerate_faces == 1 and q.unreferenced_vertices == 1
    assert "2 connected components" in q.summary() and "degenerate" in q.summary()


def load_like(vertices, faces) -> Mesh:
    return validate_mesh(vertices, faces)


def test_written_files_get_umask_permissions_not_owner_only(tmp_path):
    import os

    v, f = icosphere(0)
    umask = os.umask(0o022)
    try:
        save_mesh(tmp_path / "m.ply", v, f)
    finally:
        os.umask(umask)
    assert (tmp_path / "m.ply").stat().st_mode & 0o777 == 0o644
