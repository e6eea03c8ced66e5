"""Numerical engine of the workbench: torch / numpy / scipy only, never Qt.

Submodules hold one subject each (``mesh``, ``laplacian``, ``handles``, ``procrustes``,
``losses``, ``prn``, ``data``, ...). Everything here is usable from a notebook.
"""
