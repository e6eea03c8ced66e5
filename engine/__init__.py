"""Numerical engine of the workbench: torch / numpy / scipy only, never Qt.

Packages by subject: ``core`` (errors, device, progress), ``io`` (files), ``geometry`` (meshes,
Laplacian, handles), ``deform`` (Laplacian deformation), ``render`` (cameras, rasteriser),
``nrsfm`` (Procrustes, losses, baselines, metrics), ``prn`` (the network and its training),
``synthetic`` (built-in data), ``analysis`` (PCA), ``cli`` (batch commands).
"""
