"""The one triangle-mesh loader and writer of the project (OBJ, PLY, STL, VTK/VTP).

Every reader returns a :class:`Mesh` with ``vertices (N,3) float64`` and ``faces (F,3) int64``
(polygons are fan-triangulated), and every problem a user can cause ends in one
:class:`engine.core.errors.MeshError` naming the file, the line where it applies and what was
expected.

Policies worth knowing:

- Unreferenced vertices are kept, in file order: vertex ``i`` of the file is row ``i`` of
  ``vertices``. Reindexing silently would break handle ids, per-vertex data and anything else
  keyed on vertex numbers. Downstream code (Laplacian, handles) copes with isolated vertices.
- STL stores every triangle with its own three corners; the reader merges corners with exactly
  equal coordinates so that the result is a connected mesh (order of first appearance).
- OBJ and PLY are parsed by our own code (PyVista's OBJ reader fails on common quirks, and VTK's
  PLY reader drops to float32); VTK/VTP files go through PyVista.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.core.errors import MeshError
from engine.geometry.quality import MeshQuality, mesh_quality
from engine.io.files import write_bytes_atomic

SUPPORTED_SUFFIXES = (".obj", ".ply", ".stl", ".vtk", ".vtp")


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh.

    Attributes:
        vertices: (N,3) float64 vertex positions (file units).
        faces: (F,3) int64 vertex indices into ``vertices``, 0-based.
        path: the file it was read from, if any.
        uv: (U,2) float64 texture coordinates (OBJ ``vt``; v points up, OBJ's convention), or
            None when the file has none.
        uv_faces: (F,3) int64 indices into ``uv`` for each face corner (row f matches
            ``faces[f]``), or None. Present only when every face corner names a ``vt``.
    """

    vertices: np.ndarray
    faces: np.ndarray
    path: str | None = None
    uv: np.ndarray | None = None
    uv_faces: np.ndarray | None = None

    def quality(self) -> MeshQuality:
        """The mesh's quality report (components, holes, non-manifold edges, degenerate faces)."""
        return mesh_quality(self.vertices, self.faces)

    @property
    def num_vertices(self) -> int:
        """N, the number of vertices (referenced or not)."""
        return int(self.vertices.shape[0])

    @property
    def num_faces(self) -> int:
        """F, the number of triangles."""
        return int(self.faces.shape[0])


def validate_mesh(
    vertices, faces, *, path: str | Path | None = None, uv=None, uv_faces=None
) -> Mesh:
    """Check arrays and wrap them in a :class:`Mesh`.

    Args:
        vertices: array-like (N,3) of finite real numbers (N >= 3).
        faces: array-like (F,3) of integers in ``[0, N)`` (F >= 1).
        path: file the arrays came from, used in error messages.
        uv: optional (U,2) texture coordinates; ``uv_faces`` (F,3) indices into them, one row
            per face (both or neither).

    Returns:
        Mesh with C-contiguous float64 vertices and int64 faces (copies).

    Raises:
        MeshError: wrong shape or dtype, no faces, NaN/inf coordinates, index out of range.
    """
    try:
        v = np.array(vertices, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise MeshError(f"vertices are not numeric: {exc}", path=path, field="vertices") from None
    if v.ndim != 2 or v.shape[1] != 3:
        raise MeshError(
            f"expected vertices of shape (N, 3), got {tuple(v.shape)}", path=path, field="vertices"
        )
    if v.shape[0] < 3:
        raise MeshError(
            f"expected at least 3 vertices, got {v.shape[0]}", path=path, field="vertices"
        )
    bad = ~np.isfinite(v).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise MeshError(
            f"{int(bad.sum())} vertices have NaN or infinite coordinates (first: vertex {first})",
            path=path,
            field="vertices",
        )
    f_in = np.asarray(faces)
    if f_in.size == 0:
        raise MeshError("the mesh has no faces (expected at least one triangle)", path=path)
    if not (np.issubdtype(f_in.dtype, np.integer) or f_in.dtype == bool):
        if np.issubdtype(f_in.dtype, np.floating) and np.all(np.isfinite(f_in)):
            if not np.all(f_in == np.round(f_in)):
                raise MeshError(
                    "face indices must be integers, got fractional values",
                    path=path,
                    field="faces",
                )
        else:
            raise MeshError(
                f"face indices must be integers, got dtype {f_in.dtype}", path=path, field="faces"
            )
    f = np.array(f_in, dtype=np.int64, copy=True)
    if f.ndim != 2 or f.shape[1] != 3:
        raise MeshError(
            f"expected triangle faces of shape (F, 3), got {tuple(f.shape)}",
            path=path,
            field="faces",
        )
    lo, hi = int(f.min()), int(f.max())
    if lo < 0 or hi >= v.shape[0]:
        bad_idx = lo if lo < 0 else hi
        raise MeshError(
            f"face index {bad_idx} out of range: expected 0 <= index < {v.shape[0]} (N vertices)",
            path=path,
            field="faces",
        )
    uv_arr, uv_f = _checked_uv(uv, uv_faces, len(f), path)
    return Mesh(
        np.ascontiguousarray(v),
        np.ascontiguousarray(f),
        None if path is None else str(path),
        uv_arr,
        uv_f,
    )


def _checked_uv(uv, uv_faces, num_faces: int, path) -> tuple[np.ndarray | None, np.ndarray | None]:
    if uv is None and uv_faces is None:
        return None, None
    if uv is None or uv_faces is None:
        raise MeshError("texture coordinates need both uv and uv_faces", path=path, field="uv")
    t = np.array(uv, dtype=np.float64, copy=True)
    tf = np.array(uv_faces, dtype=np.int64, copy=True)
    if t.ndim != 2 or t.shape[1] != 2 or not np.isfinite(t).all():
        raise MeshError(f"expected finite uv of shape (U, 2), got {t.shape}", path=path, field="uv")
    if tf.shape != (num_faces, 3) or (tf.size and (tf.min() < 0 or tf.max() >= len(t))):
        raise MeshError(
            f"expected uv_faces of shape ({num_faces}, 3) indexing {len(t)} uv rows",
            path=path,
            field="uv_faces",
        )
    return np.ascontiguousarray(t), np.ascontiguousarray(tf)


def mesh_hash(vertices, faces) -> str:
    """Content hash of a mesh, for caches and checkpoints.

    Args:
        vertices: (N,3) array-like, hashed as C-contiguous float64 bytes.
        faces: (F,3) array-like, hashed as C-contiguous int64 bytes.

    Returns:
        sha256 hex digest of ``N, F`` (two little-endian int64, so that different splits of the
        same bytes differ) followed by the vertex bytes and the face bytes.
    """
    v = np.ascontiguousarray(np.asarray(vertices, dtype=np.float64))
    f = np.ascontiguousarray(np.asarray(faces, dtype=np.int64))
    h = hashlib.sha256()
    h.update(struct.pack("<qq", v.shape[0], f.shape[0]))
    h.update(v.astype("<f8", copy=False).tobytes())
    h.update(f.astype("<i8", copy=False).tobytes())
    return h.hexdigest()


def load_mesh(path: str | Path) -> Mesh:
    """Read a triangle mesh from ``.obj``, ``.ply`` (ascii/binary), ``.stl`` (ascii/binary),
    ``.vtk`` or ``.vtp``; the suffix picks the format (case-insensitive).

    Returns:
        Mesh with vertices (N,3) float64, faces (F,3) int64 (polygons fan-triangulated,
        unreferenced vertices kept) and ``path`` set.

    Raises:
        MeshError: missing/unreadable file, unknown suffix, malformed content (with the line
            number for text formats), no faces, NaN/inf coordinates, index out of range.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise MeshError(
            f"unknown mesh file type '{p.suffix or '(no suffix)'}': expected one of "
            + ", ".join(SUPPORTED_SUFFIXES),
            path=p,
        )
    if not p.exists():
        raise MeshError("file not found", path=p)
    if not p.is_file():
        raise MeshError("not a regular file", path=p)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise MeshError(f"cannot read file: {exc.strerror or exc}", path=p) from None
    if not data.strip():
        raise MeshError("the file is empty", path=p)
    if suffix == ".obj":
        vertices, faces, uv, uv_faces = _parse_obj(data, p)
        return validate_mesh(vertices, faces, path=p, uv=uv, uv_faces=uv_faces)
    if suffix == ".ply":
        vertices, faces = _parse_ply(data, p)
    elif suffix == ".stl":
        vertices, faces = _parse_stl(data, p)
    else:
        vertices, faces = _read_vtk(p)
    return validate_mesh(vertices, faces, path=p)


def save_mesh(path: str | Path, vertices, faces, *, uv=None, uv_faces=None) -> None:
    """Write a triangle mesh; the suffix picks the format.

    ``.ply`` is binary little-endian with float64 coordinates (exact round trip), ``.obj`` is
    text with 17 significant digits (exact round trip), ``.stl`` is binary with float32
    coordinates (the format allows nothing better; connectivity is recovered on load by merging
    equal corners). The file is written to a temporary name and renamed, so a failed write never
    leaves a half-written mesh behind.

    Args:
        path: destination file, suffix ``.ply``, ``.obj`` or ``.stl``.
        vertices: (N,3) float array.
        faces: (F,3) int array with indices in ``[0, N)``.
        uv, uv_faces: optional texture coordinates (U,2) and their per-corner indices (F,3);
            written as ``vt`` lines by ``.obj`` only (the other formats have no place for them).

    Raises:
        MeshError: unsupported suffix, invalid arrays, or an OS error while writing.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    writers = {".ply": _ply_bytes, ".obj": _obj_bytes, ".stl": _stl_bytes}
    if suffix not in writers:
        raise MeshError(
            f"cannot write mesh type '{p.suffix or '(no suffix)'}': expected .ply, .obj or .stl",
            path=p,
        )
    mesh = validate_mesh(vertices, faces, path=p, uv=uv, uv_faces=uv_faces)
    if suffix == ".obj":
        payload = _obj_bytes(mesh.vertices, mesh.faces, mesh.uv, mesh.uv_faces)
    else:
        payload = writers[suffix](mesh.vertices, mesh.faces)
    try:
        write_bytes_atomic(p, payload)
    except OSError as exc:
        raise MeshError(f"cannot write file: {exc.strerror or exc}", path=p) from None


# --------------------------------------------------------------------------------------- OBJ


def _decode_text(data: bytes, path: Path, kind: str) -> str:
    if b"\x00" in data[:4096]:
        raise MeshError(f"binary data where a text {kind} file was expected", path=path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Old exporters write Latin-1 comments / names; coordinates are ASCII either way.
        text = data.decode("latin-1")
        printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text[:4096])
        if printable < 0.95 * min(len(text), 4096):
            raise MeshError(
                f"binary data where a text {kind} file was expected", path=path
            ) from None
        return text


def _logical_lines(text: str):
    """Yield (1-based first physical line number, logical line) with '\\' continuations joined."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        yield start, " ".join(pending)
        pending = []
    if pending:
        yield start, " ".join(pending)


def _parse_obj(
    data: bytes, path: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    text = _decode_text(data, path, "OBJ")
    coords: list[tuple[float, float, float]] = []
    tris: list[tuple[int, int, int]] = []
    # Positive indices may legally point at vertices defined later; check them at the end and
    # remember a line to blame.
    max_index, max_index_line = -1, 0
    # Texture coordinates: kept only if every face corner names one (a partly textured file
    # cannot be rendered with a texture anyway).
    uvs: list[tuple[float, float]] = []
    uv_tris: list[tuple[int, int, int]] = []
    all_corners_textured = True
    max_uv, max_uv_line = -1, 0
    for number, line in _logical_lines(text):
        hash_pos = line.find("#")
        if hash_pos >= 0:
            line = line[:hash_pos]
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        if key == "v":
            if len(parts) < 4:
                raise MeshError(
                    f"expected 'v x y z', got {len(parts) - 1} number(s)", path=path, line=number
                )
            try:
                xyz = (float(parts[1]), float(parts[2]), float(parts[3]))
            except ValueError:
                raise MeshError(
                    f"expected three numbers after 'v', got {' '.join(parts[1:4])!r}",
                    path=path,
                    line=number,
                ) from None
            if not all(np.isfinite(xyz)):
                raise MeshError("vertex coordinate is NaN or infinite", path=path, line=number)
            coords.append(xyz)
        elif key == "vt":
            try:
                uv = (float(parts[1]), float(parts[2]) if len(parts) > 2 else 0.0)
            except (ValueError, IndexError):
                raise MeshError(
                    "expected 'vt u [v [w]]' with numbers", path=path, line=number
                ) from None
            if not all(np.isfinite(uv)):
                raise MeshError("texture coordinate is NaN or infinite", path=path, line=number)
            uvs.append(uv)
        elif key == "f":
            if len(parts) < 4:
                raise MeshError(
                    f"expected a face with at least 3 vertices, got {len(parts) - 1}",
                    path=path,
                    line=number,
                )
            nv = len(coords)
            poly = []
            uv_poly = []
            for token in parts[1:]:
                fields = token.split("/")
                head = fields[0]
                if all_corners_textured:
                    uv_index = _obj_uv_index(fields, len(uvs), path, number)
                    if uv_index is None:
                        all_corners_textured = False
                    else:
                        uv_poly.append(uv_index)
                        if uv_index > max_uv:
                            max_uv, max_uv_line = uv_index, number
                try:
                    idx = int(head)
                except ValueError:
                    raise MeshError(
                        f"expected a vertex index in face token {token!r}",
                        path=path,
                        line=number,
                    ) from None
                if idx == 0:
                    raise MeshError(
                        "face vertex index 0: OBJ indices start at 1 (or are negative)",
                        path=path,
                        line=number,
                    )
                if idx < 0:
                    resolved = nv + idx
                    if resolved < 0:
                        raise MeshError(
                            f"relative face index {idx} points before the first vertex "
                            f"({nv} vertices defined so far)",
                            path=path,
                            line=number,
                        )
                else:
                    resolved = idx - 1
                    if resolved > max_index:
                        max_index, max_index_line = resolved, number
                poly.append(resolved)
            first = poly[0]
            for a, b in itertools.pairwise(poly[1:]):
                tris.append((first, a, b))
            if all_corners_textured:
                for a, b in itertools.pairwise(uv_poly[1:]):
                    uv_tris.append((uv_poly[0], a, b))
        # Everything else (vn, vp, l, p, o, g, s, mtllib, usemtl, curves) carries nothing
        # the engine uses; materials are never opened, so missing .mtl files do not matter.
    if not coords:
        raise MeshError("no vertices ('v' lines) found", path=path)
    if not tris:
        raise MeshError("no faces ('f' lines) found: expected a triangle mesh", path=path)
    if max_index >= len(coords):
        raise MeshError(
            f"face index {max_index + 1} out of range: the file defines {len(coords)} vertices",
            path=path,
            line=max_index_line,
        )
    vertices = np.asarray(coords, dtype=np.float64)
    faces = np.asarray(tris, dtype=np.int64)
    if not (all_corners_textured and uvs):
        return vertices, faces, None, None
    if max_uv >= len(uvs):
        raise MeshError(
            f"texture index {max_uv + 1} out of range: the file defines {len(uvs)} 'vt' lines",
            path=path,
            line=max_uv_line,
        )
    return vertices, faces, np.asarray(uvs, dtype=np.float64), np.asarray(uv_tris, np.int64)


def _obj_uv_index(fields: list[str], defined: int, path: Path, line: int) -> int | None:
    """0-based ``vt`` index of a face token ``v/vt/vn`` (None when it names none)."""
    if len(fields) < 2 or not fields[1]:
        return None
    try:
        idx = int(fields[1])
    except ValueError:
        raise MeshError(
            f"expected a texture index in face token {'/'.join(fields)!r}", path=path, line=line
        ) from None
    if idx == 0:
        raise MeshError("face texture index 0: OBJ indices start at 1", path=path, line=line)
    if idx < 0:
        if defined + idx < 0:
            raise MeshError(
                f"relative texture index {idx} points before the first 'vt'", path=path, line=line
            )
        return defined + idx
    return idx - 1


def _obj_bytes(
    vertices: np.ndarray,
    faces: np.ndarray,
    uv: np.ndarray | None = None,
    uv_faces: np.ndarray | None = None,
) -> bytes:
    lines = ["# written by shapebench engine.io.mesh"]
    lines += [f"v {x:.17g} {y:.17g} {z:.17g}" for x, y, z in vertices.tolist()]
    if uv is None:
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces.tolist()]
    else:
        lines += [f"vt {u:.17g} {w:.17g}" for u, w in uv.tolist()]
        lines += [
            f"f {a + 1}/{ta + 1} {b + 1}/{tb + 1} {c + 1}/{tc + 1}"
            for (a, b, c), (ta, tb, tc) in zip(faces.tolist(), uv_faces.tolist())
        ]
    return ("\n".join(lines) + "\n").encode("ascii")


# --------------------------------------------------------------------------------------- PLY

_PLY_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}


@dataclass
class _PlyElement:
    name: str
    count: int
    # (name, dtype) for scalars, (name, count dtype, item dtype) for lists
    properties: list[tuple]
    line: int


def _parse_ply_header(data: bytes, path: Path) -> tuple[str, list[_PlyElement], int, int]:
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise MeshError("not a PLY file: expected 'ply' ... 'end_header' header", path=path)
    nl = data.find(b"\n", end)
    body_start = len(data) if nl < 0 else nl + 1
    try:
        header = data[:end].decode("ascii")
    except UnicodeDecodeError:
        raise MeshError("PLY header is not ASCII text", path=path) from None
    fmt = None
    elements: list[_PlyElement] = []
    header_lines = header.splitlines()
    for number, raw in enumerate(header_lines, start=1):
        parts = raw.split()
        if not parts or parts[0] in ("ply", "comment", "obj_info"):
            continue
        if parts[0] == "format":
            if len(parts) < 2 or parts[1] not in (
                "ascii",
                "binary_little_endian",
                "binary_big_endian",
            ):
                raise MeshError(
                    "expected 'format ascii|binary_little_endian|binary_big_endian 1.0'",
                    path=path,
                    line=number,
                )
            fmt = parts[1]
        elif parts[0] == "element":
            if len(parts) != 3 or not parts[2].isdigit():
                raise MeshError("expected 'element <name> <count>'", path=path, line=number)
            elements.append(_PlyElement(parts[1], int(parts[2]), [], number))
        elif parts[0] == "property":
            if not elements:
                raise MeshError("'property' before any 'element'", path=path, line=number)
            if len(parts) == 5 and parts[1] == "list":
                if parts[2] not in _PLY_TYPES or parts[3] not in _PLY_TYPES:
                    raise MeshError(
                        f"unknown PLY list types {parts[2]!r}/{parts[3]!r}", path=path, line=number
                    )
                elements[-1].properties.append(
                    (parts[4], _PLY_TYPES[parts[2]], _PLY_TYPES[parts[3]])
                )
            elif len(parts) == 3 and parts[1] in _PLY_TYPES:
                elements[-1].properties.append((parts[2], _PLY_TYPES[parts[1]]))
            else:
                raise MeshError(
                    f"expected 'property <type> <name>' or 'property list <type> <type> <name>', "
                    f"got {raw.strip()!r}",
                    path=path,
                    line=number,
                )
        else:
            raise MeshError(f"unknown PLY header keyword {parts[0]!r}", path=path, line=number)
    if fmt is None:
        raise MeshError("PLY header has no 'format' line", path=path)
    return fmt, elements, body_start, len(header_lines) + 2  # +1 for end_header itself


def _ply_vertex_columns(element: _PlyElement, path: Path) -> list[int]:
    names = [p[0] for p in element.properties]
    missing = [axis for axis in "xyz" if axis not in names]
    if missing:
        raise MeshError(
            f"PLY vertex element lacks properties {', '.join(missing)} (expected x, y, z)",
            path=path,
            line=element.line,
        )
    for axis in "xyz":
        if len(element.properties[names.index(axis)]) != 2:
            raise MeshError(f"PLY vertex property {axis} is a list", path=path, line=element.line)
    return [names.index(axis) for axis in "xyz"]


def _ply_face_column(element: _PlyElement, path: Path) -> int:
    for i, prop in enumerate(element.properties):
        if len(prop) == 3 and prop[0] in ("vertex_indices", "vertex_index"):
            return i
    raise MeshError(
        "PLY face element lacks a 'vertex_indices' list property", path=path, line=element.line
    )


def _fan(polys: list[list[int]]) -> list[tuple[int, int, int]]:
    tris = []
    for poly in polys:
        for a, b in itertools.pairwise(poly[1:]):
            tris.append((poly[0], a, b))
    return tris


def _parse_ply(data: bytes, path: Path) -> tuple[np.ndarray, np.ndarray]:
    fmt, elements, body_start, first_body_line = _parse_ply_header(data, path)
    names = [e.name for e in elements]
    if "vertex" not in names:
        raise MeshError("PLY file has no 'vertex' element", path=path)
    if "face" not in names or elements[names.index("face")].count == 0:
        raise MeshError("PLY file has no faces: expected a triangle mesh", path=path)
    if fmt == "ascii":
        return _parse_ply_ascii(data[body_start:], elements, path, first_body_line)
    return _parse_ply_binary(data[body_start:], elements, path, "<" if "little" in fmt else ">")


def _parse_ply_ascii(body: bytes, elements, path: Path, first_line: int):
    try:
        lines = body.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise MeshError("ascii PLY body contains non-ASCII bytes", path=path) from None
    cursor = 0
    vertices = faces = None
    for element in elements:
        if element.name == "vertex":
            cols = _ply_vertex_columns(element, path)
        elif element.name == "face":
            fcol = _ply_face_column(element, path)
        rows: list = []
        for _ in range(element.count):
            while cursor < len(lines) and not lines[cursor].strip():
                cursor += 1
            if cursor >= len(lines):
                raise MeshError(
                    f"file ends inside element '{element.name}' (expected {element.count} rows)",
                    path=path,
                    line=first_line + cursor,
                )
            number = first_line + cursor
            tokens = lines[cursor].split()
            cursor += 1
            try:
                values, pos = [], 0
                for prop in element.properties:
                    if len(prop) == 2:
                        values.append(float(tokens[pos]))
                        pos += 1
                    else:
                        n = int(tokens[pos])
                        values.append([int(t) for t in tokens[pos + 1 : pos + 1 + n]])
                        if len(values[-1]) != n:
                            raise IndexError
                        pos += 1 + n
            except (ValueError, IndexError):
                raise MeshError(
                    f"malformed '{element.name}' row: expected {len(element.properties)} "
                    "propert(ies)",
                    path=path,
                    line=number,
                ) from None
            if element.name == "vertex":
                rows.append([values[c] for c in cols])
            elif element.name == "face":
                poly = values[fcol]
                if len(poly) < 3:
                    raise MeshError(
                        f"face with {len(poly)} vertices: expected at least 3",
                        path=path,
                        line=number,
                    )
                rows.append(poly)
        if element.name == "vertex":
            vertices = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
        elif element.name == "face":
            faces = np.asarray(_fan(rows), dtype=np.int64).reshape(-1, 3)
    return vertices, faces


def _parse_ply_binary(body: bytes, elements, path: Path, endian: str):
    offset = 0
    vertices = faces = None

    def truncated(element):
        return MeshError(
            f"binary PLY ends inside element '{element.name}' ({element.count} expected)",
            path=path,
        )

    for element in elements:
        has_list = any(len(p) == 3 for p in element.properties)
        if not has_list:
            dtype = np.dtype([(f"p{i}", endian + p[1]) for i, p in enumerate(element.properties)])
            size = dtype.itemsize * element.count
            if offset + size > len(body):
                raise truncated(element)
            table = np.frombuffer(body, dtype=dtype, count=element.count, offset=offset)
            offset += size
            if element.name == "vertex":
                cols = _ply_vertex_columns(element, path)
                vertices = np.stack(
                    [table[f"p{c}"].astype(np.float64) for c in cols], axis=1
                ).reshape(-1, 3)
            continue
        if element.name == "vertex":
            _ply_vertex_columns(element, path)
            raise MeshError("PLY vertex element with list properties is not supported", path=path)
        # Fast path: every list has the same length as the first (all triangles, all quads).
        table, offset_after = _ply_fixed_lists(body, offset, element, endian)
        if table is None:
            polys, offset_after = _ply_variable_lists(body, offset, element, endian, truncated)
        else:
            polys = table
        offset = offset_after
        if element.name == "face":
            fcol = _ply_face_column(element, path)
            if isinstance(polys, dict):
                arr = polys[fcol].astype(np.int64)
                if arr.shape[1] < 3:
                    raise MeshError(
                        f"faces with {arr.shape[1]} vertices: expected at least 3", path=path
                    )
                faces = np.concatenate(
                    [arr[:, [0, k, k + 1]] for k in range(1, arr.shape[1] - 1)], axis=0
                )
                # keep each polygon's fan triangles together, as the ascii path does
                faces = faces.reshape(arr.shape[1] - 2, -1, 3).transpose(1, 0, 2).reshape(-1, 3)
            else:
                rows = [row[fcol] for row in polys]
                if any(len(r) < 3 for r in rows):
                    raise MeshError("face with fewer than 3 vertices", path=path)
                faces = np.asarray(_fan(rows), dtype=np.int64).reshape(-1, 3)
    return vertices, faces


def _ply_fixed_lists(body: bytes, offset: int, element: _PlyElement, endian: str):
    """Parse an element whose list properties all have the length of the first row's lists."""
    if element.count == 0:
        return {}, offset
    fields, pos, lengths = [], offset, {}
    for i, prop in enumerate(element.properties):
        if len(prop) == 2:
            fields.append((f"p{i}", endian + prop[1]))
            pos += np.dtype(prop[1]).itemsize
        else:
            cdt = np.dtype(endian + prop[1])
            if pos + cdt.itemsize > len(body):
                return None, offset
            n = int(np.frombuffer(body, dtype=cdt, count=1, offset=pos)[0])
            lengths[i] = n
            fields.append((f"c{i}", cdt))
            fields.append((f"p{i}", endian + prop[2], (n,)) if n else (f"p{i}", endian + prop[2]))
            if n == 0:
                return None, offset
            pos += cdt.itemsize + n * np.dtype(prop[2]).itemsize
    dtype = np.dtype(fields)
    size = dtype.itemsize * element.count
    if offset + size > len(body):
        return None, offset
    table = np.frombuffer(body, dtype=dtype, count=element.count, offset=offset)
    for i, n in lengths.items():
        if not np.all(table[f"c{i}"] == n):
            return None, offset
    return {i: np.asarray(table[f"p{i}"]).reshape(element.count, -1) for i in lengths}, (
        offset + size
    )


def _ply_variable_lists(body: bytes, offset: int, element: _PlyElement, endian: str, truncated):
    rows = []
    for _ in range(element.count):
        row = []
        for prop in element.properties:
            if len(prop) == 2:
                dt = np.dtype(endian + prop[1])
                if offset + dt.itemsize > len(body):
                    raise truncated(element)
                row.append(np.frombuffer(body, dtype=dt, count=1, offset=offset)[0])
                offset += dt.itemsize
            else:
                cdt, idt = np.dtype(endian + prop[1]), np.dtype(endian + prop[2])
                if offset + cdt.itemsize > len(body):
                    raise truncated(element)
                n = int(np.frombuffer(body, dtype=cdt, count=1, offset=offset)[0])
                offset += cdt.itemsize
                if offset + n * idt.itemsize > len(body):
                    raise truncated(element)
                row.append(np.frombuffer(body, dtype=idt, count=n, offset=offset).tolist())
                offset += n * idt.itemsize
        rows.append(row)
    return rows, offset


def _ply_bytes(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    if faces.max() >= 2**31:
        raise MeshError("too many vertices for a PLY int32 index")
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment written by shapebench engine.io.mesh\n"
        f"element vertex {len(vertices)}\nproperty double x\nproperty double y\n"
        f"property double z\nelement face {len(faces)}\n"
        "property list uchar int vertex_indices\nend_header\n"
    ).encode("ascii")
    face_dtype = np.dtype([("n", "u1"), ("idx", "<i4", (3,))])
    table = np.empty(len(faces), dtype=face_dtype)
    table["n"] = 3
    table["idx"] = faces
    return header + vertices.astype("<f8").tobytes() + table.tobytes()


# --------------------------------------------------------------------------------------- STL

_STL_VERTEX = re.compile(rb"^\s*vertex\s+(\S+)\s+(\S+)\s+(\S+)", re.MULTILINE)


def _parse_stl(data: bytes, path: Path) -> tuple[np.ndarray, np.ndarray]:
    corners = None
    if len(data) >= 84:
        (count,) = struct.unpack_from("<I", data, 80)
        if 84 + 50 * count == len(data):
            if count == 0:
                raise MeshError("binary STL with no triangles", path=path)
            rec = np.dtype([("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")])
            corners = np.frombuffer(data, dtype=rec, count=count, offset=84)["v"]
            corners = corners.astype(np.float64).reshape(-1, 3)
    if corners is None:
        if not data.lstrip().lower().startswith(b"solid"):
            raise MeshError(
                "not an STL file: binary size does not match its triangle count and the text "
                "does not start with 'solid'",
                path=path,
            )
        values = []
        for match in _STL_VERTEX.finditer(data):
            try:
                values.append([float(x) for x in match.groups()])
            except ValueError:
                line = data.count(b"\n", 0, match.start()) + 1
                raise MeshError(
                    "expected 'vertex x y z' with three numbers", path=path, line=line
                ) from None
        if not values:
            raise MeshError("ascii STL with no 'vertex' lines: expected triangles", path=path)
        if len(values) % 3:
            raise MeshError(f"ascii STL has {len(values)} vertices, not a multiple of 3", path=path)
        corners = np.asarray(values, dtype=np.float64)
    if not np.isfinite(corners).all():
        raise MeshError("STL vertex coordinates contain NaN or infinity", path=path)
    unique, first, inverse = np.unique(corners, axis=0, return_index=True, return_inverse=True)
    # np.unique sorts; renumber by first appearance so vertex order follows the file.
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return unique[order], rank[inverse.reshape(-1)].reshape(-1, 3)


def _stl_bytes(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    tri = vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, lengths, out=np.zeros_like(normals), where=lengths > 0)
    rec = np.dtype([("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    table = np.zeros(len(faces), dtype=rec)
    table["n"] = normals
    table["v"] = tri
    header = b"binary STL written by shapebench engine.io.mesh".ljust(80, b" ")
    return header + struct.pack("<I", len(faces)) + table.tobytes()


# --------------------------------------------------------------------------------------- VTK


def _read_vtk(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pyvista as pv
    from vtkmodules.vtkCommonCore import vtkObject

    previous = vtkObject.GetGlobalWarningDisplay()
    vtkObject.GlobalWarningDisplayOff()
    try:
        data = pv.read(str(path))
    except Exception as exc:  # VTK raises many unrelated types for garbage input
        raise MeshError(f"cannot read as VTK: {exc}", path=path) from None
    finally:
        vtkObject.SetGlobalWarningDisplay(previous)
    if isinstance(data, pv.MultiBlock):
        raise MeshError("multi-block VTK files are not supported: expected one surface", path=path)
    if data is None or data.n_points == 0:
        raise MeshError("no points could be read: empty or malformed VTK file", path=path)
    if not isinstance(data, pv.PolyData):
        # Volume cells: keep the boundary surface but all original points, in order.
        surface = data.extract_surface(pass_pointid=True)
        ids = np.asarray(surface.point_data["vtkOriginalPointIds"], dtype=np.int64)
        tri = surface.triangulate()
        faces = _polydata_triangles(tri, path)
        return np.asarray(data.points, dtype=np.float64), ids[faces]
    tri = data.triangulate()
    return np.asarray(data.points, dtype=np.float64), _polydata_triangles(tri, path)


def _polydata_triangles(poly, path: Path) -> np.ndarray:
    flat = np.asarray(poly.faces, dtype=np.int64)
    if flat.size == 0:
        raise MeshError("no polygon faces in the VTK data: expected a surface mesh", path=path)
    if flat.size % 4 or not np.all(flat[::4] == 3):
        raise MeshError("VTK polygons did not triangulate into triangles", path=path)
    return flat.reshape(-1, 4)[:, 1:]
