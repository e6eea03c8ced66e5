"""Laplacian surface deformation (seed 001, section 3): the factored Laplacian system, its
differentiable solve, the learnable :class:`LaplacianDeformer` and the real-time editing basis."""
