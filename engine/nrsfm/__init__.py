"""Non-rigid structure from motion on keypoints: Procrustes alignment with PRN's gradient, the
low-rank and reprojection losses, per-frame normalisation, classic baselines and 3D metrics."""
