"""Benchmark: the pure-torch rasteriser against a dense all-pixels-by-all-faces reference.

Two workloads, each one forward + backward:

- soft: ``engine.render.rasterizer.soft_silhouette`` and ``loss = sum((S - target)^2)``, the
  gradient w.r.t. the vertices;
- textured: ``rasterize`` (hard fragments) + ``engine.render.shading.sample_texture`` +
  ``loss = sum((image - target)^2)``, the gradient w.r.t. the vertices and the texture.

"ours" is the engine's code: each face is evaluated only inside its bounding box grown by the
soft cut-off radius. "dense" evaluates every pixel against every face with the same formulas
written out in torch (autograd through them, faces in chunks, each chunk checkpointed so that
memory stays bounded); its textured variant builds the z-buffer densely and shades with the same
``sample_texture``. Meshes are icospheres (1280 / 5120 / 20480 faces), each batch element
rotated differently, scaled to span 70 % of the image.

Times are the best of a few runs (one run where a run takes seconds; the machine is shared, the
minimum is the least disturbed run). Peak memory is the resident-set growth during one run
(a thread samples /proc/self/statm every 0.5 ms, after malloc_trim), since tracemalloc does not
see torch's CPU allocations; on CUDA it is torch.cuda.max_memory_allocated above the start.
Dense cases estimated (by scaling the last measured dense case with B * H * W * F) to take
longer than ``--budget`` seconds are skipped and print their estimate.

    python benchmarks/render.py --threads 1                 # full table
    python benchmarks/render.py --faces 1280 --sizes 64 --batches 8   # the headline case

Target: 1280 faces at 64 x 64, batch 8, soft forward + backward within 0.1 s on one CPU thread
and at least 50x faster than the dense reference.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import math
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.geometry.primitives import icosphere
from engine.render.rasterizer import (
    Fragments,
    RasterSettings,
    barycentric,
    pixel_centres,
    rasterize,
    soft_silhouette,
)
from engine.render.shading import sample_texture

SUBDIV = {1280: 3, 5120: 4, 20480: 5}
TARGET_SECONDS = 0.1
TARGET_SPEEDUP = 50.0
_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform.startswith("linux") else None


# ----------------------------------------------------------------------------- measurement


class PeakMemory:
    """Peak memory above the starting level during a ``with`` block, in bytes."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss() - self._start)
            time.sleep(0.0005)

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if _LIBC is not None:
            # Hand freed heap back to the OS so that reused memory counts again.
            _LIBC.malloc_trim(0)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            self._start = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._start
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self._rss() - self._start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn, device: torch.device, repeats: int) -> tuple[float, float]:
    """Best seconds over ``repeats`` runs after one untimed run that also gives peak MiB."""
    with PeakMemory(device) as mem:
        start = time.perf_counter()
        fn()
        _sync(device)
        first = time.perf_counter() - start
    times = [first]
    for _ in range(repeats - 1 if first < 2.0 else 0):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times), mem.peak / 2**20


# ----------------------------------------------------------------------------- problem


class Problem:
    """B rotated icospheres in screen space, targets and a texture."""

    def __init__(self, nfaces: int, size: int, batch: int, device: torch.device) -> None:
        v, f = icosphere(SUBDIV[nfaces])
        g = torch.Generator().manual_seed(0)
        q, _ = torch.linalg.qr(torch.randn(batch, 3, 3, generator=g, dtype=torch.float64))
        pts = torch.einsum("bij,nj->bni", q, torch.tensor(v))
        # Radius 0.35 * size: the sphere spans 70 % of the image; depth > 0 throughout.
        verts = pts * (0.35 * size) + torch.tensor([size / 2, size / 2, 2.0 * size])
        self.verts = verts.float().to(device)
        self.faces = torch.tensor(f).to(device)
        self.settings = RasterSettings(size)
        self.target = (torch.rand(batch, size, size, generator=g) > 0.5).float().to(device)
        self.rgb_target = torch.rand(batch, size, size, 3, generator=g).to(device)
        self.texture = torch.rand(batch, 3, 64, 64, generator=g).to(device)
        # Spherical texture coordinates (the seam does not matter for timing).
        u = np.arctan2(v[:, 1], v[:, 0]) / (2 * np.pi) + 0.5
        w = np.arcsin(np.clip(v[:, 2], -1, 1)) / np.pi + 0.5
        self.uv = torch.tensor(np.stack([u, w], 1), dtype=torch.float32).to(device)
        self.device = device

    def pairs(self) -> int:
        """(face, pixel) pairs our soft pass evaluates."""
        xy = self.verts[..., :2][:, self.faces]
        r = self.settings.cutoff_radius
        size = self.settings.image_size[0]
        # Pixel centres j + 0.5 within [min - r, max + r], clipped to the image.
        lo = (xy.amin(2) - r - 0.5).ceil().clamp(0, size)
        hi = (xy.amax(2) + r - 0.5).floor().clamp(-1, size - 1)
        return int((hi - lo + 1).clamp_min(0).prod(-1).sum())


def soft_ours(p: Problem) -> None:
    verts = p.verts.clone().requires_grad_(True)
    sil = soft_silhouette(verts, p.faces, p.settings)
    ((sil - p.target) ** 2).sum().backward()


def textured(p: Problem, raster) -> None:
    verts = p.verts.clone().requires_grad_(True)
    texture = p.texture.clone().requires_grad_(True)
    frags = raster(verts, p.faces, p.settings)
    image = sample_texture(frags, verts, p.faces, p.uv, p.faces, texture)
    ((image - p.rgb_target) ** 2).sum().backward()


# ----------------------------------------------------------------------------- dense reference


def _face_chunk(batch: int, pixels: int) -> int:
    """Faces per chunk so that one (B, pixels, faces) float tensor stays near 4M entries."""
    return max(1, (1 << 22) // (batch * pixels))


def _dense_log_empty(tri: torch.Tensor, p: torch.Tensor, sigma: float) -> torch.Tensor:
    """sum over the chunk's faces of log(1 - D) per pixel: tri (B,Fc,3,2), p (HW,2) -> (B,HW)."""
    p = p.view(1, -1, 1, 2)
    d2s, crosses = [], []
    for k in range(3):
        a = tri[:, None, :, (k + 1) % 3]
        e = tri[:, None, :, (k + 2) % 3] - a
        u = p - a
        t = ((u * e).sum(-1) / (e * e).sum(-1).clamp_min(1e-30)).clamp(0, 1)
        r = u - t.unsqueeze(-1) * e
        d2s.append((r * r).sum(-1))
        crosses.append(e[..., 0] * u[..., 1] - e[..., 1] * u[..., 0])
    d2 = torch.stack(d2s).amin(0)
    cross = torch.stack(crosses)
    inside = (cross > 0).all(0) | (cross < 0).all(0)
    x = torch.where(inside, d2, -d2) / sigma
    return torch.nn.functional.logsigmoid(-x).sum(-1)


def dense_soft(verts: torch.Tensor, faces: torch.Tensor, s: RasterSettings) -> torch.Tensor:
    height, width = s.image_size
    batch = verts.shape[0]
    p = pixel_centres(torch.arange(height * width, device=verts.device), s.image_size, verts.dtype)
    tri = verts[..., :2][:, faces]
    step = _face_chunk(batch, height * width)
    log_empty = sum(
        checkpoint(_dense_log_empty, tri[:, i : i + step], p, s.sigma, use_reentrant=False)
        for i in range(0, faces.shape[0], step)
    )
    return (1 - log_empty.exp()).view(batch, height, width)


def soft_dense(p: Problem) -> None:
    verts = p.verts.clone().requires_grad_(True)
    sil = dense_soft(verts, p.faces, p.settings)
    ((sil - p.target) ** 2).sum().backward()


def dense_rasterize(verts: torch.Tensor, faces: torch.Tensor, s: RasterSettings) -> Fragments:
    """Dense z-buffer: every pixel centre against every face (chunked), nearest covering face."""
    height, width = s.image_size
    batch, nverts = verts.shape[:2]
    verts = verts.detach()
    p = pixel_centres(torch.arange(height * width, device=verts.device), s.image_size, verts.dtype)
    zbuf = torch.full((batch, height * width), math.inf, device=verts.device, dtype=verts.dtype)
    face = torch.full((batch, height * width), -1, device=verts.device, dtype=torch.long)
    step = _face_chunk(batch, height * width)
    for i in range(0, faces.shape[0], step):
        tri = verts[:, faces[i : i + step]]  # (B,Fc,3,3)
        w = barycentric(tri[:, None, :, :, :2], p.view(1, -1, 1, 2))  # (B,HW,Fc,3)
        z = (w * tri[:, None, :, :, 2]).sum(-1)
        z = torch.where((w >= 0).all(-1), z, math.inf)
        zmin, arg = z.min(-1)
        better = zmin < zbuf
        zbuf = torch.where(better, zmin, zbuf)
        face = torch.where(better, arg + i, face)
    covered = face >= 0
    frame = torch.arange(batch, device=verts.device).view(-1, 1).expand_as(face)
    corners = faces[face.clamp_min(0)] + (frame * nverts).unsqueeze(-1)
    bary = barycentric(verts[..., :2].reshape(-1, 2)[corners], p.view(1, -1, 2))
    bary = torch.where(covered.unsqueeze(-1), bary, 0.0)
    shape = (batch, height, width)
    return Fragments(face.view(shape), bary.view(*shape, 3), zbuf.view(shape))


# ----------------------------------------------------------------------------- main


def fmt_time(t: float) -> str:
    return f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def run_dense_case(name, fn, p, cost, done, args, device) -> tuple[str, str, float | None]:
    """Time a dense case unless its estimate exceeds the budget: (time text, memory, seconds)."""
    if name in done:
        last_cost, last_time = done[name]
        guess = last_time * cost / last_cost
        if guess > args.budget:
            return f"skipped (est. {guess:.0f} s)", "—", None
    t, mem = measure(lambda: fn(p), device, 3)
    done[name] = (cost, t)
    return fmt_time(t), f"{mem:.0f} MiB", t


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", default="1280,5120,20480", help="comma-separated face counts")
    parser.add_argument("--sizes", default="64,128,256", help="comma-separated image sizes (px)")
    parser.add_argument("--batches", default="8,64", help="comma-separated batch sizes")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--budget", type=float, default=60.0, help="skip dense runs estimated above this (s)"
    )
    args = parser.parse_args(argv)
    faces = [int(x) for x in args.faces.split(",")]
    unknown = sorted(set(faces) - set(SUBDIV))
    if unknown:
        parser.error(f"no icosphere with {unknown} faces: choose from {sorted(SUBDIV)}")
    sizes = [int(x) for x in args.sizes.split(",")]
    batches = [int(x) for x in args.batches.split(",")]
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"torch {torch.__version__}, {where}, threads {torch.get_num_threads()}, "
        f"sigma {RasterSettings(1).sigma} px^2, eps {RasterSettings(1).eps}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        "| faces | image | B | pairs | soft: ours | peak | dense | peak | speed-up "
        "| textured: ours | peak | dense | peak | speed-up |"
    )
    print("|" + "---|" * 14)
    done: dict[str, tuple[float, float]] = {}
    headline = None
    for nfaces in faces:
        for size in sizes:
            for batch in batches:
                p = Problem(nfaces, size, batch, device)
                cost = batch * size * size * nfaces
                t_soft, m_soft = measure(lambda p=p: soft_ours(p), device, 5)
                t_tex, m_tex = measure(lambda p=p: textured(p, rasterize), device, 5)
                d_soft, dm_soft, ts = run_dense_case(
                    "soft", soft_dense, p, cost, done, args, device
                )
                d_tex, dm_tex, tt = run_dense_case(
                    "tex", lambda p: textured(p, dense_rasterize), p, cost, done, args, device
                )
                up_soft = f"{ts / t_soft:.0f}x" if ts else "—"
                up_tex = f"{tt / t_tex:.0f}x" if tt else "—"
                if (nfaces, size, batch) == (1280, 64, 8):
                    headline = (t_soft, ts)
                print(
                    f"| {nfaces} | {size}² | {batch} | {p.pairs() / 1e6:.2f} M | "
                    f"{fmt_time(t_soft)} | {m_soft:.0f} MiB | {d_soft} | {dm_soft} | {up_soft} | "
                    f"{fmt_time(t_tex)} | {m_tex:.0f} MiB | {d_tex} | {dm_tex} | {up_tex} |",
                    flush=True,
                )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if headline is not None:
        t, dense = headline
        ok_t = "met" if t <= TARGET_SECONDS else "MISSED"
        line = f"target: soft fwd+bwd, 1280 faces, 64², B=8: {fmt_time(t)} (<= 0.1 s: {ok_t})"
        if dense is not None:
            ok_s = "met" if dense / t >= TARGET_SPEEDUP else "MISSED"
            line += f", {dense / t:.0f}x the dense reference (>= 50x: {ok_s})"
        print(line)
    print(
        "\npairs = (face, pixel) pairs the soft pass evaluates (boxes grown by the cut-off "
        "radius); dense evaluates B * H * W * F. Peak = memory growth during one run."
    )


if __name__ == "__main__":
    main()
