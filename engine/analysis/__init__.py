"""Analyses of learned shape spaces: PCA deformation modes and the shape sets they are run on."""

from engine.analysis.pca import PCAResult, pca

__all__ = ["PCAResult", "pca"]
