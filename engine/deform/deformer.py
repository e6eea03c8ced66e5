"""The learnable deformer: a template moved by K handles through a softmax dependency matrix."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.deform.solve import LaplacianSystem, laplacian_solve
from engine.geometry.handles import (
    dependency_matrix,
    farthest_point_handles,
    gaussian_logits,
    geodesic_distances,
    handle_spacing,
    init_logits,
)
from engine.geometry.laplacian import cotangent_laplacian


class LaplacianDeformer(nn.Module):
    """Template mesh deformed by K handles through a learnable dependency matrix.

    ``A = softmax(logits)`` (K,N), ``handle_positions() = A T``, and ``forward(offsets)`` returns
    the Laplacian deformation with handle targets ``H = A T + offsets``.

    Args:
        vertices: (N,3) float template ``T`` (its dtype is the module's dtype).
        faces: (F,3) long triangles.
        num_handles: K, used when ``handle_ids`` is None (farthest-point sampling).
        handle_ids: optional (K,) long vertex ids of the handles.
        seed: seed of the farthest-point sampling.
        init: ``"authors"``: logits ``-16 log(d + eps)`` (the released code; rows are
            numerically one-hot, right for editing a fixed A); ``"gaussian"``: logits
            ``-(d / w)^2 / 2`` with ``w = width * handle spacing``
            (:func:`engine.geometry.handles.gaussian_logits`), the choice for learning A,
            whose gradient reaches every vertex near a handle.
        width: ``w`` as a fraction of the median distance between neighbouring handles
            (``"gaussian"`` only).

    Buffers: ``template`` (N,3), ``faces`` (F,3), ``handle_ids`` (K,), and the non-persistent
    ``laplacian`` (sparse (N,N), rebuilt from the template). Parameter: ``logits`` (K,N)
    initialised to ``-16 log(d + eps)`` of the edge-graph geodesic distances ``d``.
    """

    def __init__(
        self,
        vertices: Tensor,
        faces: Tensor,
        num_handles: int = 16,
        handle_ids: Tensor | None = None,
        seed: int = 0,
        init: str = "authors",
        width: float = 0.3,
    ) -> None:
        super().__init__()
        vertices = torch.as_tensor(vertices)
        if not vertices.is_floating_point():
            vertices = vertices.to(torch.float64)
        faces = torch.as_tensor(faces).to(device=vertices.device, dtype=torch.int64)
        if handle_ids is None:
            handle_ids = farthest_point_handles(vertices, faces, num_handles, seed=seed)
        handle_ids = torch.as_tensor(handle_ids).to(device=vertices.device, dtype=torch.int64)
        if handle_ids.ndim != 1 or handle_ids.numel() < 1:
            raise ValueError("handle_ids must be a non-empty 1-D tensor of vertex ids")
        if int(handle_ids.min()) < 0 or int(handle_ids.max()) >= vertices.shape[0]:
            raise ValueError(f"handle ids must lie in [0, {vertices.shape[0]})")
        dist = geodesic_distances(vertices, faces, handle_ids)
        self.register_buffer("template", vertices.detach().clone())
        self.register_buffer("faces", faces.clone())
        self.register_buffer("handle_ids", handle_ids.clone())
        self.register_buffer(
            "laplacian", cotangent_laplacian(self.template, self.faces), persistent=False
        )
        if init == "authors":
            logits = init_logits(dist)
        elif init == "gaussian":
            logits = gaussian_logits(dist, width * handle_spacing(dist, handle_ids))
        else:
            raise ValueError(f"init must be 'authors' or 'gaussian', got {init!r}")
        self.logits = nn.Parameter(logits.to(vertices.dtype))
        self._system: LaplacianSystem | None = None

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, *args) -> None:
        # A state dict may hold another template (another mesh, other handles): take its sizes,
        # then rebuild what is derived from the template, so that the Laplacian and the cached
        # factorisation never describe the mesh that was replaced.
        for name in ("template", "faces", "handle_ids"):
            incoming = state_dict.get(prefix + name)
            if isinstance(incoming, Tensor) and incoming.shape != getattr(self, name).shape:
                setattr(self, name, getattr(self, name).new_empty(incoming.shape))
        logits = state_dict.get(prefix + "logits")
        if isinstance(logits, Tensor) and logits.shape != self.logits.shape:
            self.logits.data = self.logits.data.new_empty(logits.shape)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, *args)
        self.laplacian = cotangent_laplacian(self.template, self.faces)
        self._system = None

    @property
    def A(self) -> Tensor:
        """(K,N) dependency matrix ``softmax(logits)``, rows sum to 1."""
        return dependency_matrix(self.logits)

    @property
    def num_handles(self) -> int:
        """K."""
        return int(self.logits.shape[0])

    @property
    def system(self) -> LaplacianSystem:
        """The factored :class:`LaplacianSystem` of the template, built on first use and
        rebuilt after the module moves to another device."""
        if self._system is None or self._system.device != self.laplacian.device:
            self._system = LaplacianSystem(self.laplacian)
        return self._system

    def handle_positions(self) -> Tensor:
        """(K,3) rest positions of the handles, ``A T``."""
        return self.A @ self.template

    def forward(self, offsets: Tensor) -> Tensor:
        """Deform the template.

        Args:
            offsets: (B,K,3) or (K,3) handle displacements ``Delta`` from ``A T``.

        Returns:
            (B,N,3) or (N,3) deformed vertices (dtype of the module's parameters).
        """
        A = self.A
        H = (A @ self.template) + offsets
        return laplacian_solve(self.system, A, self.template, H)
