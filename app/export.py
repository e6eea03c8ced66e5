"""Write what the 3D views show to disk: PNG pictures and GIF / MP4 animations (imageio).

The views render frames (``(H, W, 3)`` uint8 RGB arrays); this module only lays them out and
encodes them, so the Compare workspace and the Modes workspace share one exporter:

    image = hstack_images([view.render_image() for view in views])
    save_png(image, "compare.png")
    count = save_animation((render(i) for i in frames), "compare.mp4", fps=10)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

ANIMATION_SUFFIXES = (".gif", ".mp4")
IMAGE_SUFFIXES = (".png",)


def hstack_images(images: list[np.ndarray], background: int = 255) -> np.ndarray:
    """Place images side by side, top-aligned, padding shorter ones with ``background``.

    Args:
        images: non-empty list of ``(H_i, W_i, 3)`` uint8 RGB images (an alpha channel is dropped).
        background: grey level used for padding.

    Returns:
        ``(max H_i, sum W_i, 3)`` uint8 image.
    """
    if not images:
        raise ValueError("hstack_images needs at least one image")
    rgb = [np.asarray(img)[..., :3].astype(np.uint8, copy=False) for img in images]
    height = max(img.shape[0] for img in rgb)
    padded = []
    for img in rgb:
        if img.shape[0] < height:
            pad = np.full((height - img.shape[0], img.shape[1], 3), background, np.uint8)
            img = np.concatenate([img, pad], axis=0)
        padded.append(img)
    return np.concatenate(padded, axis=1)


def _even(image: np.ndarray) -> np.ndarray:
    """Crop to even height and width: H.264 with yuv420p chroma needs both even."""
    h, w = image.shape[:2]
    return image[: h - h % 2, : w - w % 2]


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write one ``(H, W, 3|4)`` uint8 image as PNG and return the path."""
    import imageio.v3 as iio

    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: a picture is saved as .png, got '{path.suffix}'")
    iio.imwrite(path, np.ascontiguousarray(np.asarray(image, dtype=np.uint8)))
    return path


def save_animation(frames: Iterable[np.ndarray], path: str | Path, fps: float = 10.0) -> int:
    """Encode frames as an animated GIF or an H.264 MP4, chosen by the file suffix.

    Frames are streamed to the encoder (a long range never sits in memory at once). Every frame
    must have the size of the first one; MP4 frames are cropped to even sizes. A GIF stores
    identical consecutive frames once (with the summed duration).

    Args:
        frames: iterable of ``(H, W, 3)`` uint8 RGB images.
        path: ``.gif`` or ``.mp4`` file to write.
        fps: frames per second of playback.

    Returns:
        The number of frames written.
    """
    import imageio.v2 as imageio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ANIMATION_SUFFIXES:
        raise ValueError(f"{path}: an animation is saved as .gif or .mp4, got '{suffix}'")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if suffix == ".mp4":
        # macro_block_size=1: the frames are already even-sized; imageio must not rescale them.
        writer = imageio.get_writer(
            path, fps=fps, codec="libx264", quality=8, macro_block_size=1, pixelformat="yuv420p"
        )
    else:
        # Duration is in milliseconds per frame. Pillow stores identical consecutive frames
        # once with their durations added, so playback time is kept but a GIF of a still
        # scene holds fewer frames than were written.
        writer = imageio.get_writer(path, mode="I", duration=1000.0 / fps, loop=0)
    count = 0
    size = None
    try:
        for frame in frames:
            image = np.ascontiguousarray(np.asarray(frame, dtype=np.uint8)[..., :3])
            if suffix == ".mp4":
                image = _even(image)
            if size is None:
                size = image.shape
            elif image.shape != size:
                raise ValueError(
                    f"frame {count} has size {image.shape[:2]}, the first had {size[:2]}"
                )
            writer.append_data(image)
            count += 1
    finally:
        writer.close()
    if count == 0:
        path.unlink(missing_ok=True)
        raise ValueError(f"{path}: no frames to write")
    return count
