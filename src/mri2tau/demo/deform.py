"""Random rigid + smooth nonlinear subject deformations with an exact-enough numerical inverse.

A subject's head ("native world", scanner mm, RAS) relates to template world (mm, RAS) by

    template_to_native(x) = R @ (x + u(x))          (u: smooth displacement, template mm)
    native_to_template(p) = y + w(y),   y = R^-1 @ p  (w: inverse displacement)

``u`` and ``w`` live on a regular lattice (``LATTICE_MM`` spacing) covering the template field
of view plus a margin, and are interpolated trilinearly (beyond the lattice: nearest value).
``w`` is solved on the lattice points by fixed-point iteration ``v <- y - u(v)`` so that
``v + u(v) = y``; the round trip error between lattice points is ~0.01 mm for the default
smoothness (checked in the tests against 0.1 voxel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from mri2tau.templates import template_grid

LATTICE_MM = 4.0
LATTICE_MARGIN_MM = 48.0


def euler_matrix(rot_deg: np.ndarray) -> np.ndarray:
    """3x3 rotation ``Rz @ Ry @ Rx`` for angles (x, y, z) in degrees (right-hand rule, RAS axes)."""
    ax, ay, az = np.deg2rad(np.asarray(rot_deg, dtype=float))
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def rigid_matrix(rot_deg: np.ndarray, trans_mm: np.ndarray, centre_mm: np.ndarray | None = None) -> np.ndarray:
    """4x4 rigid ``p -> Rot (p - c) + c + t`` (mm), ``Rot = euler_matrix(rot_deg)``."""
    rot = euler_matrix(rot_deg)
    c = np.zeros(3) if centre_mm is None else np.asarray(centre_mm, float)
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = c - rot @ c + np.asarray(trans_mm, float)
    return m


def random_rigid(rng: np.random.Generator, max_rot_deg: float, max_trans_mm: float,
                 centre_mm: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uniform random rotation angles / translations; returns (4x4, rot_deg, trans_mm)."""
    rot = rng.uniform(-max_rot_deg, max_rot_deg, 3)
    trans = rng.uniform(-max_trans_mm, max_trans_mm, 3)
    return rigid_matrix(rot, trans, centre_mm), rot, trans


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply 4x4 ``m`` to points with coordinates on the FIRST axis (3, ...)."""
    pts = np.asarray(points)
    flat = pts.reshape(3, -1)
    out = m[:3, :3] @ flat + m[:3, 3:4]
    return out.reshape(pts.shape)


def grid_points(shape: tuple[int, ...], vox2world: np.ndarray, dtype=np.float32) -> np.ndarray:
    """World mm (3, *shape) of every voxel centre of a grid."""
    idx = np.indices(shape, dtype=dtype)
    return apply_affine(vox2world.astype(dtype), idx)


@dataclass
class Lattice:
    """Regular lattice in template world: ``origin`` (mm of index 0), ``spacing`` (mm), ``shape``."""

    origin: np.ndarray
    spacing: float
    shape: tuple[int, int, int]

    def points(self) -> np.ndarray:
        """World mm (3, *shape) of the lattice nodes."""
        return self.origin.reshape(3, 1, 1, 1) + self.spacing * np.indices(self.shape, dtype=float)

    def sample(self, field: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Trilinear interpolation of ``field`` (3, *shape) at world mm ``points`` (3, ...)."""
        pts = np.asarray(points)
        idx = (pts.reshape(3, -1) - self.origin.reshape(3, 1).astype(pts.dtype)) / self.spacing
        out = np.empty((3, idx.shape[1]), dtype=np.float32)
        for c in range(3):
            out[c] = ndi.map_coordinates(field[c], idx, order=1, mode="nearest", prefilter=False)
        return out.reshape(pts.shape)


def template_lattice(spacing_mm: float = LATTICE_MM, margin_mm: float = LATTICE_MARGIN_MM) -> Lattice:
    """Lattice covering the 1 mm template field of view plus ``margin_mm`` on every side."""
    shape, affine = template_grid(1.0)
    lo = affine[:3, 3] - margin_mm
    hi = affine[:3, 3] + np.array(shape) - 1 + margin_mm
    n = tuple(int(v) for v in np.ceil((hi - lo) / spacing_mm) + 1)
    return Lattice(origin=lo.astype(float), spacing=float(spacing_mm), shape=n)  # type: ignore[arg-type]


@dataclass
class SubjectDeformation:
    """Template <-> native mapping of one subject (all coordinates world mm, RAS)."""

    rigid: np.ndarray  # 4x4 template world -> native world (after the nonlinear part)
    lattice: Lattice
    u: np.ndarray  # (3, *lattice.shape) forward displacement, template mm
    w: np.ndarray  # (3, *lattice.shape) inverse displacement, template mm

    def template_to_native(self, points: np.ndarray) -> np.ndarray:
        """Native world mm of template world mm ``points`` (3, ...)."""
        moved = points + self.lattice.sample(self.u, points)
        return apply_affine(self.rigid, moved).astype(np.float32)

    def native_to_template(self, points: np.ndarray) -> np.ndarray:
        """Template world mm of native world mm ``points`` (3, ...)."""
        y = apply_affine(np.linalg.inv(self.rigid), points).astype(np.float32)
        return y + self.lattice.sample(self.w, y)


def smooth_displacement(rng: np.random.Generator, lattice: Lattice, max_mm: float,
                        smoothness_mm: float) -> np.ndarray:
    """Gaussian-smoothed white noise on ``lattice`` scaled so max |u| = ``max_mm`` (3, *shape)."""
    sigma = smoothness_mm / lattice.spacing
    noise = rng.standard_normal((3, *lattice.shape))
    field = np.stack([ndi.gaussian_filter(c, sigma, mode="reflect") for c in noise])
    norm = np.sqrt((field**2).sum(0)).max()
    return (field * (max_mm / norm)).astype(np.float32)


def invert_displacement(lattice: Lattice, u: np.ndarray, iterations: int = 30,
                        tol_mm: float = 1e-4) -> np.ndarray:
    """Inverse displacement ``w`` on the lattice nodes: ``y + w(y) + u(y + w(y)) = y``."""
    y = lattice.points().astype(np.float32)
    w = -lattice.sample(u, y)
    for _ in range(iterations):
        w_new = -lattice.sample(u, y + w)
        change = float(np.abs(w_new - w).max())
        w = w_new
        if change < tol_mm:
            break
    return w.astype(np.float32)


def random_deformation(rng: np.random.Generator, max_rot_deg: float = 10.0,
                       max_trans_mm: float = 10.0, max_warp_mm: float = 5.0,
                       smoothness_mm: float = 16.0) -> tuple[SubjectDeformation, dict]:
    """A random subject deformation and its parameters (rotation deg, translation mm, warp mm)."""
    rigid, rot, trans = random_rigid(rng, max_rot_deg, max_trans_mm)
    lattice = template_lattice()
    warp_mm = float(rng.uniform(0.6, 1.0) * max_warp_mm)
    u = smooth_displacement(rng, lattice, warp_mm, smoothness_mm)
    w = invert_displacement(lattice, u)
    params = {"rot_deg": rot.tolist(), "trans_mm": trans.tolist(), "max_warp_mm": warp_mm,
              "warp_smoothness_mm": smoothness_mm}
    return SubjectDeformation(rigid=rigid, lattice=lattice, u=u, w=w), params
