"""Built-in data with hidden ground truth: the synthetic human keypoint set and the synthetic
articulated image category."""
