"""Reconstructions of held-out synthetic instances for the README: the input image, the
network's mesh from the predicted camera, and the same mesh from a novel view (turned 90
degrees about the template's up axis).

    python assets/screenshots/make_category_reconstructions.py --checkpoint RUN.pt \
        [--data synthetic:quadruped?split=test] [--out assets/screenshots/category_reconstructions.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    from engine.category.checkpoint import load_category_run
    from engine.category.inspect import turned_camera
    from engine.io.image_sets import load_image_set
    from engine.render.preview import render_preview

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", default="synthetic:quadruped?split=test")
    parser.add_argument("--out", default="assets/screenshots/category_reconstructions.png")
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--side", type=int, default=160)
    args = parser.parse_args()
    run = load_category_run(args.checkpoint, device="cpu")
    images = load_image_set(args.data, size=run.config.size)
    picks = np.linspace(0, len(images) - 1, args.count).round().astype(int)
    subset = images.subset(picks)
    pred = run.predict(subset)
    faces = run.template.mesh.faces
    scale = args.side / images.size
    rows = []
    for i in range(len(picks)):
        cam = pred["cameras"][i].astype(np.float64)
        big = cam.copy()
        big[:3] *= scale  # the same camera for a larger picture
        novel = turned_camera(big, pred["vertices"][i], run.template.up_axis)
        views = render_preview(
            np.stack([pred["vertices"][i]] * 2), faces, np.stack([big, novel]), args.side
        )
        source = (
            subset.images[i]
            if subset.images is not None
            else subset.masks[i][..., None].repeat(3, -1)
        )
        source = cv2.resize(
            (source * 255).astype(np.uint8), (args.side, args.side), interpolation=cv2.INTER_NEAREST
        )
        rows.append(np.concatenate([source, views[0], views[1]], 1))
    cv2.imwrite(args.out, cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
