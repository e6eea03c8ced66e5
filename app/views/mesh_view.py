"""A PyVista view of one triangle mesh with draggable handle spheres and influence colouring.

Mouse handling: an event filter on the QtInteractor sees Qt mouse events before VTK does.
A left press over a visible handle is consumed (so the camera does not move), selects the handle
(Ctrl adds/toggles) and starts a drag; moves are projected onto the plane through the handle
parallel to the screen (constant view depth: VTK's display-to-world at the handle's display z),
and emitted as a world-space displacement from the press point. Everything else goes to VTK's
camera interaction as usual. The view holds no editing state: it emits signals.
"""

from __future__ import annotations

import numpy as np
import pyvista as pv
from PyQt6.QtCore import QEvent, QObject, Qt, QTimer, pyqtSignal
from PyQt6.QtWidgets import QVBoxLayout, QWidget
from pyvistaqt import QtInteractor
from vtkmodules.vtkRenderingCore import vtkCellPicker

from app.views.colour_bar import ColourBar

MESH_COLOUR = "#d8c3a5"
HANDLE_COLOUR = "#2b7bb9"
SELECTED_COLOUR = "#f2542d"
PICK_TOLERANCE_PX = 12.0
#: Colour map of non-negative scalars (weights, motion) and of signed ones around 0.
SCALAR_CMAP = "viridis"
DIVERGING_CMAP = "coolwarm"
#: Axes a mesh can be shown with pointing up: "z" (the demo template, most scans) or "y"
#: (most OBJ files, e.g. the animal templates of seed 001).
UP_AXES = ("z", "y")


def _faces_to_vtk(faces: np.ndarray) -> np.ndarray:
    return np.hstack([np.full((len(faces), 1), 3, dtype=np.int64), faces]).ravel()


class MeshView(QWidget):
    """3D view: a mesh, K handle spheres, optional per-vertex scalars with a colour bar.

    Signals:
        handle_pressed(int, bool): handle index, and whether Ctrl was held (add to selection).
        drag_started(): a press on a handle began a drag.
        drag_moved(object): (3,) float64 world displacement since the press.
        drag_finished(): the button was released.
    """

    handle_pressed = pyqtSignal(int, bool)
    drag_started = pyqtSignal()
    drag_moved = pyqtSignal(object)
    drag_finished = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plotter = QtInteractor(self)
        layout.addWidget(self.plotter.interactor, 1)
        # The colour bar is a Qt strip below the render area: it never covers the mesh or a
        # handle dragged to the edge of the view.
        self.colour_bar = ColourBar(self)
        layout.addWidget(self.colour_bar)
        self.plotter.set_background("white", top="#b8c6db")
        # FXAA: SSAA renders 4x the pixels, too slow on software GL (llvmpipe) to drag with.
        self.plotter.enable_anti_aliasing("fxaa")
        self._render_pending = False
        self.plotter.interactor.installEventFilter(self)

        self.up_axis = "z"
        self._poly: pv.PolyData | None = None
        self._mesh_actor = None
        self._handle_actors: list = []
        self._handle_positions = np.zeros((0, 3))
        self._selection: tuple[int, ...] = ()
        self._handles_visible = True
        self._scalar_title: str | None = None
        self._cmap = SCALAR_CMAP
        self._drag_origin: np.ndarray | None = None  # world point under the press
        self._drag_depth = 0.0  # display z of the dragged handle
        self._picker = vtkCellPicker()
        self._picker.SetTolerance(0.0)
        self._picker.PickFromListOn()
        self._closed = False

    # ----------------------------------------------------------------- content
    @property
    def renderer(self):
        return self.plotter.renderer

    def set_mesh(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        """Show a new mesh (N,3)/(F,3), replacing the old one and its handles; resets camera."""
        # Remove our actors one by one: plotter.clear() would also drop the lights.
        self.set_scalars(None)
        self._remove_handles()
        if self._mesh_actor is not None:
            self.plotter.remove_actor(self._mesh_actor, render=False)
        self._poly = pv.PolyData(np.array(vertices, dtype=np.float64), _faces_to_vtk(faces))
        self._poly.point_data["influence"] = np.zeros(len(vertices))
        self._mesh_actor = self.plotter.add_mesh(
            self._poly,
            color=MESH_COLOUR,
            scalars="influence",
            cmap=SCALAR_CMAP,
            show_scalar_bar=False,
            smooth_shading=True,
            specular=0.2,
            show_edges=False,
            edge_color="#555555",
            reset_camera=False,
        )
        self._mesh_actor.mapper.scalar_visibility = False
        self._cmap = SCALAR_CMAP
        self._picker.InitializePickList()
        self._picker.AddPickList(self._mesh_actor)
        self.reset_camera()

    def update_vertices(self, vertices: np.ndarray) -> None:
        """Move the mesh's points in place (no new VTK objects) and render."""
        if self._poly is None:
            return
        self._poly.points[:] = vertices
        self._poly.GetPoints().Modified()
        self._poly.Modified()
        self.request_render()

    def current_vertices(self) -> np.ndarray:
        """(N,3) the points the view is drawing."""
        return np.array(self._poly.points, dtype=np.float64)

    def set_handles(self, positions: np.ndarray) -> None:
        """Create one sphere per handle at (K,3) ``positions`` (radius from the mesh size)."""
        self._remove_handles()
        radius = 0.018 * float(self._poly.length) if self._poly is not None else 0.02
        sphere = pv.Sphere(radius=radius, theta_resolution=16, phi_resolution=12)
        for _ in range(len(positions)):
            actor = self.plotter.add_mesh(
                sphere,
                color=HANDLE_COLOUR,
                smooth_shading=True,
                reset_camera=False,
                render=False,
            )
            actor.SetVisibility(self._handles_visible)
            self._picker.AddPickList(actor)
            self._handle_actors.append(actor)
        self._selection = ()
        self.update_handles(positions)

    def _remove_handles(self) -> None:
        for actor in self._handle_actors:
            self.plotter.remove_actor(actor, render=False)
            self._picker.DeletePickList(actor)
        self._handle_actors = []

    def update_handles(self, positions: np.ndarray) -> None:
        """Move the spheres to (K,3) ``positions`` and render."""
        self._handle_positions = np.array(positions, dtype=np.float64)
        for actor, p in zip(self._handle_actors, self._handle_positions):
            actor.SetPosition(*p)
        self.request_render()

    def set_selection(self, selection: tuple[int, ...]) -> None:
        """Colour the selected handles."""
        self._selection = tuple(selection)
        for i, actor in enumerate(self._handle_actors):
            colour = SELECTED_COLOUR if i in self._selection else HANDLE_COLOUR
            actor.prop.color = colour
        self.request_render()

    def set_handles_visible(self, visible: bool) -> None:
        self._handles_visible = bool(visible)
        for actor in self._handle_actors:
            actor.SetVisibility(self._handles_visible)
        self.request_render()

    def set_wireframe(self, on: bool) -> None:
        """Draw the triangle edges over the surface."""
        if self._mesh_actor is not None:
            self._mesh_actor.prop.show_edges = bool(on)
            self.request_render()

    def set_scalars(
        self,
        values: np.ndarray | None,
        title: str = "",
        value_range=None,
        fmt: str = "%.3f",
        cmap: str = SCALAR_CMAP,
    ) -> None:
        """Colour by (N,) ``values`` with a colour bar titled ``title``; None: plain colour.

        ``value_range`` (lo, hi) defaults to (0, max(values)); values outside it take the end
        colours. The bar is drawn below the 3D view (:attr:`colour_bar`), labels in ``fmt``.
        ``cmap`` names a matplotlib colour map (a diverging one, e.g. :data:`DIVERGING_CMAP`,
        for signed values around 0).
        """
        if self._mesh_actor is None:
            return
        mapper = self._mesh_actor.mapper
        if values is None:
            mapper.scalar_visibility = False
            self._scalar_title = None
            self.colour_bar.clear()
        else:
            self._poly.point_data["influence"] = np.asarray(values, dtype=np.float64)
            if value_range is None:
                top = float(np.max(values))
                value_range = (0.0, top if top > 0 else 1.0)
            lo, hi = (float(v) for v in value_range)
            if cmap != self._cmap:
                mapper.lookup_table.cmap = cmap
                self._cmap = cmap
            mapper.scalar_range = (lo, hi)
            mapper.scalar_visibility = True
            self.colour_bar.set_range(title, lo, hi, mapper.GetLookupTable(), fmt=fmt)
            self._scalar_title = title
        self.request_render()

    def set_up_axis(self, axis: str) -> None:
        """Show ``axis`` ("z" or "y") pointing up, and return to the home view."""
        if axis not in UP_AXES:
            raise ValueError(f"expected an up axis in {UP_AXES}, got {axis!r}")
        self.up_axis = axis
        self.reset_camera()

    def reset_camera(self) -> None:
        """The home view: from the front-left and a little above, ``up_axis`` up, mesh fitted."""
        if self.up_axis == "y":
            self.plotter.view_xy()
        else:
            self.plotter.view_xz()
        self.plotter.camera.azimuth = -25
        self.plotter.camera.elevation = 15
        self.plotter.reset_camera()
        self.request_render()

    def look_along(self, forward: np.ndarray, up: np.ndarray) -> None:
        """Parallel view of the mesh along ``forward`` (3,) with ``up`` (3,) pointing up on
        screen, fitted to the mesh (how a weak-perspective camera sees it)."""
        if self._poly is None:
            return
        centre = np.asarray(self._poly.center, dtype=np.float64)
        size = float(np.linalg.norm(np.ptp(self._poly.points, axis=0))) or 1.0
        forward = np.asarray(forward, dtype=np.float64)
        camera = self.plotter.camera
        camera.position = tuple(centre - 3.0 * size * forward / np.linalg.norm(forward))
        camera.focal_point = tuple(centre)
        camera.up = tuple(np.asarray(up, dtype=np.float64))
        self.plotter.enable_parallel_projection()
        self.plotter.reset_camera()
        self.request_render()

    def set_points(
        self,
        name: str,
        points: np.ndarray | None,
        colours: np.ndarray | None = None,
        radius: float = 0.03,
    ) -> None:
        """Spheres at (M,3) ``points`` (``radius`` relative to the mesh size) with (M,3) RGB
        colours in [0,1], as one named actor; None removes it."""
        self.plotter.remove_actor(name, render=False)
        if points is None or len(points) == 0:
            self.request_render()
            return
        size = (
            1.0 if self._poly is None else float(np.linalg.norm(np.ptp(self._poly.points, axis=0)))
        )
        cloud = pv.PolyData(np.asarray(points, dtype=np.float64))
        glyphs = cloud.glyph(geom=pv.Sphere(radius=radius * size), scale=False, orient=False)
        if colours is not None:
            rgb = (np.clip(np.asarray(colours), 0, 1) * 255).astype(np.uint8)
            per_point = glyphs.n_points // len(points)
            glyphs.point_data["rgb"] = np.repeat(rgb, per_point, axis=0)
            self.plotter.add_mesh(glyphs, scalars="rgb", rgb=True, name=name, reset_camera=False)
        else:
            self.plotter.add_mesh(glyphs, color="#d62728", name=name, reset_camera=False)
        self.request_render()

    def request_render(self) -> None:
        """Render once when control returns to the event loop: several changes from one
        event (points, handles, colours) cost one render, at most one per mouse move."""
        if not self._render_pending:
            self._render_pending = True
            QTimer.singleShot(0, self._render_now)

    def _render_now(self) -> None:
        self._render_pending = False
        if not self._closed:
            self.plotter.render()

    # ----------------------------------------------------------------- projection
    def _display_size(self) -> tuple[int, int]:
        w, h = self.plotter.render_window.GetSize()
        return int(w), int(h)

    def _dpr(self) -> float:
        return float(self.plotter.interactor.devicePixelRatioF())

    def world_to_widget(self, points: np.ndarray) -> np.ndarray:
        """(M,3) world points -> (M,2) widget (Qt logical pixel) coordinates, origin top-left."""
        renderer = self.renderer
        _, height = self._display_size()
        dpr = self._dpr()
        out = np.zeros((len(points), 2))
        for i, p in enumerate(np.asarray(points, dtype=np.float64)):
            renderer.SetWorldPoint(p[0], p[1], p[2], 1.0)
            renderer.WorldToDisplay()
            x, y, _ = renderer.GetDisplayPoint()
            out[i] = (x / dpr, (height - 1 - y) / dpr)
        return out

    def _widget_to_display(self, x: float, y: float) -> tuple[float, float]:
        _, height = self._display_size()
        dpr = self._dpr()
        return x * dpr, height - 1 - y * dpr

    def _display_depth(self, point: np.ndarray) -> float:
        self.renderer.SetWorldPoint(point[0], point[1], point[2], 1.0)
        self.renderer.WorldToDisplay()
        return float(self.renderer.GetDisplayPoint()[2])

    def _display_to_world(self, xd: float, yd: float, depth: float) -> np.ndarray:
        self.renderer.SetDisplayPoint(xd, yd, depth)
        self.renderer.DisplayToWorld()
        w = np.array(self.renderer.GetWorldPoint(), dtype=np.float64)
        return w[:3] / w[3]

    def handle_at(self, x: float, y: float) -> int | None:
        """The visible handle under widget position (x, y), within a few pixels, or None.

        A sphere hit directly by the ray under the cursor wins. Otherwise the handles whose
        projected centre is within a few pixels are tried nearest first; a handle counts as
        visible when a ray through its centre or through one of 8 points around it (inside
        its projected disc) hits its sphere before the mesh: handles sit slightly inside the
        surface, so part of a sphere can be hidden while the rest shows.
        """
        if not self._handle_actors or not self._handles_visible:
            return None
        hit = self._pick(*self._widget_to_display(x, y))
        if hit is not None and hit[0] >= 0:
            return hit[0]
        screen = self.world_to_widget(self._handle_positions)
        dist = np.linalg.norm(screen - np.array([x, y]), axis=1)
        radius_px = self._radius_px(self._sphere_radius())
        tolerance = max(PICK_TOLERANCE_PX, radius_px)
        angles = np.linspace(0.0, 2.0 * np.pi, 8, endpoint=False)
        ring = 0.75 * radius_px * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        for i in np.argsort(dist):
            if dist[i] > tolerance:
                break
            for sx, sy in np.vstack([screen[i], screen[i] + ring]):
                hit = self._pick(*self._widget_to_display(sx, sy))
                if hit is not None and hit[0] == i:
                    return int(i)
        return None

    def _pick(self, xd: float, yd: float) -> tuple[int, np.ndarray] | None:
        """First surface along the ray at display (xd, yd): (handle index or -1 for the
        mesh, world point), or None if the ray hits nothing."""
        if not self._picker.Pick(xd, yd, 0.0, self.renderer):
            return None
        actor = self._picker.GetActor()
        point = np.array(self._picker.GetPickPosition(), dtype=np.float64)
        for i, handle_actor in enumerate(self._handle_actors):
            if actor is handle_actor:
                return i, point
        return -1, point

    def _sphere_radius(self) -> float:
        bounds = self._handle_actors[0].GetMapper().GetInput().GetBounds()
        return 0.5 * (bounds[1] - bounds[0])

    def _radius_px(self, radius: float) -> float:
        centre = self._handle_positions[0]
        up = np.array(self.plotter.camera.GetViewUp())
        a, b = self.world_to_widget(np.stack([centre, centre + radius * up]))
        return float(np.linalg.norm(a - b))

    # ----------------------------------------------------------------- mouse
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        etype = event.type()
        if etype == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
            pos = event.position()
            handle = self.handle_at(pos.x(), pos.y())
            if handle is None:
                return False
            add = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
            self.handle_pressed.emit(handle, add)
            self._drag_depth = self._display_depth(self._handle_positions[handle])
            self._drag_origin = self._display_to_world(
                *self._widget_to_display(pos.x(), pos.y()), self._drag_depth
            )
            self.drag_started.emit()
            return True
        if etype == QEvent.Type.MouseMove and self._drag_origin is not None:
            pos = event.position()
            world = self._display_to_world(
                *self._widget_to_display(pos.x(), pos.y()), self._drag_depth
            )
            self.drag_moved.emit(world - self._drag_origin)
            return True
        if etype == QEvent.Type.MouseButtonRelease and self._drag_origin is not None:
            self._drag_origin = None
            self.drag_finished.emit()
            return True
        return False

    # ----------------------------------------------------------------- output
    def screenshot(self, path: str) -> None:
        """Save the 3D view as a PNG of the view's current size, with the colour bar below it
        when one is shown."""
        from app.export import save_png

        image = self.image()
        if self.colour_bar.showing:
            bar = self.colour_bar.image()
            width = image.shape[1]
            strip = np.full((bar.shape[0], width, 3), 255, dtype=np.uint8)
            strip[:, : min(width, bar.shape[1])] = bar[:, :width]
            image = np.concatenate([image, strip], axis=0)
        save_png(image, path)

    def image(self) -> np.ndarray:
        """(H,W,3) uint8 RGB of the 3D view as rendered now."""
        self._render_now()
        return np.asarray(self.plotter.screenshot(None, return_img=True))

    def close_view(self) -> None:
        """Release VTK resources (idempotent); call before the window goes away."""
        if not self._closed:
            self._closed = True
            self.plotter.interactor.removeEventFilter(self)
            self.plotter.close()
