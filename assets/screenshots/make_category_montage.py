"""Montage of the synthetic category for the README: per instance the image, the mask with the
visible keypoints, and the colour-coded ground-truth flow to the next frame.

    python assets/screenshots/make_category_montage.py [--out assets/screenshots/category_montage.png]

Flow colours: hue is the direction, saturation the length (relative to the longest shown).
Keypoints: green visible, red hidden (self-occluded), from the z-buffer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def flow_colours(flow: np.ndarray, scale: float) -> np.ndarray:
    """(H,W,2) flow -> (H,W,3) uint8 RGB, hue = direction, saturation = |flow| / scale."""
    angle = (np.degrees(np.arctan2(flow[..., 1], flow[..., 0])) % 360) / 2
    mag = np.clip(np.linalg.norm(flow, axis=-1) / max(scale, 1e-6), 0, 1)
    hsv = np.stack([angle, mag * 255, np.full_like(mag, 255)], -1).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def main() -> None:
    from engine.synthetic.category import category_template, generate_category

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="assets/screenshots/category_montage.png")
    parser.add_argument("--size", type=int, default=160)
    args = parser.parse_args()
    data = generate_category(category_template(), instances=20, size=args.size, seed=0)
    picks = [0, 4, 8, 12, 16]  # first frame of five videos
    rows = []
    scale = max(np.linalg.norm(data["flow"][i], axis=-1).max() for i in picks)
    for i in picks:
        mask = np.repeat((data["masks"][i] * 200).astype(np.uint8)[..., None], 3, -1)
        for x, y, visible in data["keypoints"][i]:
            colour = (40, 200, 40) if visible else (220, 40, 40)
            cv2.circle(mask, (int(x), int(y)), max(args.size // 60, 2), colour, -1)
        rows.append(
            np.concatenate([data["images"][i], mask, flow_colours(data["flow"][i], scale)], 1)
        )
    montage = np.concatenate(rows, 0)
    cv2.imwrite(args.out, cv2.cvtColor(montage, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
