"""Masks only, a template of about 4,000 vertices, occluded and border-cut silhouettes: the
default category training's time and fit (issue 13's 30-minute target for about 100 masks).

    python benchmarks/category_masks.py [--instances 100] [--vertices 4000] [--threads 2] [--out DIR]
        [--iterations N] [--network-steps N]

Builds in DIR (a temporary folder by default):

* ``template.obj``: the demo quadruped, loop-subdivided once and decimated by VTK to about
  ``--vertices`` vertices, written with ``vt`` (a cylindrical map) and ``vn`` lines, as users'
  OBJ exports come;
* ``train/`` and ``test/``: masks-only image sets (no RGB, no keypoints, no flow) made by the
  synthetic generator from that template (the test split's seeds), where every third mask is
  occluded by a vertical bar across the body and every third, starting at the second, is cut by
  the image border (the image ends inside the object; images then differ in size).

Then trains ``CategoryConfig(data=DIR/train, template=DIR/template.obj)`` with every other
setting at its default (the render proxy decimates the template for rendering), and prints the
training time and the mask IoU of the network and of the databases on the training masks and
of the network on the held-out masks (against the masks as given, occluder and cut included).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_template(path: Path, vertices: int) -> int:
    """Write the dense OBJ template; returns its vertex count."""
    import numpy as np
    import pyvista as pv

    from engine.category.template import DEMO_TEMPLATE
    from engine.io.mesh import load_mesh

    demo = load_mesh(DEMO_TEMPLATE)
    faces = np.hstack([np.full((len(demo.faces), 1), 3), demo.faces]).ravel()
    poly = pv.PolyData(demo.vertices, faces).subdivide(1, "loop")
    poly = poly.decimate_pro(1.0 - vertices / poly.n_points, preserve_topology=True)
    poly = poly.clean().triangulate().compute_normals(auto_orient_normals=True)
    v = np.asarray(poly.points, dtype=np.float64)
    f = np.asarray(poly.faces).reshape(-1, 4)[:, 1:]
    n = np.asarray(poly.point_data["Normals"], dtype=np.float64)
    centre = v.mean(0)
    u = np.arctan2(v[:, 2] - centre[2], v[:, 1] - centre[1]) / (2 * np.pi) + 0.5
    w = (v[:, 0] - v[:, 0].min()) / np.ptp(v[:, 0])
    lines = [f"v {a:.9g} {b:.9g} {c:.9g}" for a, b, c in v]
    lines += [f"vt {a:.6f} {b:.6f}" for a, b in zip(u, w)]
    lines += [f"vn {a:.6f} {b:.6f} {c:.6f}" for a, b, c in n]
    lines += [f"f {a}/{a}/{a} {b}/{b}/{b} {c}/{c}/{c}" for a, b, c in f + 1]
    path.write_text("\n".join(lines) + "\n")
    return len(v)


def make_masks(spec: str, out: Path) -> int:
    """A masks-only copy of the synthetic set ``spec`` with occluded and cut masks."""
    import imageio.v3 as iio
    import numpy as np

    from engine.io.image_sets import save_image_set
    from engine.synthetic.category import synthetic_folder

    files = sorted((synthetic_folder(spec) / "masks").glob("*.png"))
    names, masks = [], []
    for i, file in enumerate(files):
        name = file.stem
        mask = np.asarray(iio.imread(file)) > 127
        mask = mask if mask.ndim == 2 else mask[..., -1]
        cols = np.flatnonzero(mask.any(0))
        rows = np.flatnonzero(mask.any(1))
        if i % 3 == 0:  # a post in front of the body
            mid = (cols[0] + cols[-1]) // 2
            half = max(1, (cols[-1] - cols[0]) // 12)
            mask[:, mid - half : mid + half] = False
        elif i % 3 == 1:  # the photograph ends inside the object
            keep = cols[0] + int(0.75 * (cols[-1] - cols[0]))
            mask = mask[:, :keep]
        if rows.size == 0 or not mask.any():
            continue
        names.append(name)
        masks.append(mask)
    save_image_set(out, names, masks)
    return len(names)


def main() -> None:
    import torch

    from engine.category.config import CategoryConfig
    from engine.category.evaluate import evaluate_model
    from engine.category.training import CategoryTrainer
    from engine.io.image_sets import load_image_set

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--vertices", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="folder for the template and the sets (default: temporary)")
    parser.add_argument("--iterations", type=int, help="main steps (default: the config's)")
    parser.add_argument("--network-steps", type=int, help="(default: the config's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="category_masks_"))
    root.mkdir(parents=True, exist_ok=True)
    template = root / "template.obj"
    count = make_template(template, args.vertices)
    for split, instances in (("train", args.instances), ("test", 32)):
        if (root / split).exists():
            shutil.rmtree(root / split)
        spec = f"synthetic:quadruped?instances={instances}&split={split}&template={template}"
        made = make_masks(spec, root / split)
        print(f"{split}: {made} masks", flush=True)
    changes = {
        k: v
        for k, v in (("iterations", args.iterations), ("network_steps", args.network_steps))
        if v is not None
    }
    config = CategoryConfig(data=str(root / "train"), template=str(template), **changes)
    start = time.perf_counter()
    trainer = CategoryTrainer(config)
    print(
        f"template {count} vertices, rendered with {trainer.proxy.num_faces} faces; "
        f"{len(trainer.images)} masks at {config.size} px; {args.threads} threads",
        flush=True,
    )
    trainer.run()
    seconds = time.perf_counter() - start
    train = evaluate_model(trainer, trainer.images, methods=("predicted", "fit"))
    test = evaluate_model(
        trainer, load_image_set(str(root / "test"), size=config.size), methods=("predicted",)
    )
    finite = all(all(v == v for v in h.values()) for h in trainer.history)
    print()
    print("| what | value |")
    print("|---|---|")
    print(f"| state | {trainer.state} (finite losses: {finite}) |")
    print(f"| train time | {seconds:.0f} s (target 1800 s) |")
    print(f"| predicted IoU, training masks | {train['predicted']['iou_mean']:.4f} |")
    print(f"| databases IoU, training masks | {train['fit']['iou_mean']:.4f} |")
    print(f"| predicted IoU, held-out masks | {test['predicted']['iou_mean']:.4f} |")


if __name__ == "__main__":
    main()
