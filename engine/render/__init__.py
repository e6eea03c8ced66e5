"""Image space: weak-perspective cameras and a differentiable rasteriser in pure torch (soft
silhouette, z-buffer fragments, colour and flow shading)."""
