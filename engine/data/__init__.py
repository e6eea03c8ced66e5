"""Keypoint data: the one point-set loader, per-frame normalisation and built-in synthetic sets.

``from engine.data import load_dataset`` is how every part of the project gets a
:class:`KeypointSequence`; see :mod:`engine.data.keypoints` for the file formats and specs.
"""

from engine.data.keypoints import (
    KeypointSequence,
    load_dataset,
    load_keypoints,
    save_keypoints,
    with_missing,
)
from engine.data.normalize import denormalize_3d, normalize_2d, normalize_3d

__all__ = [
    "KeypointSequence",
    "denormalize_3d",
    "load_dataset",
    "load_keypoints",
    "normalize_2d",
    "normalize_3d",
    "save_keypoints",
    "with_missing",
]
