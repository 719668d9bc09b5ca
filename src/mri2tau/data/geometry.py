"""Where the 3D network volume sits on the template grid (voxel units), without torch.

The Snakefile resolves the 3D models' hyper-parameters (their ``image_size`` is the volume box)
while it parses, so this module needs only numpy and the template grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mri2tau.templates import template_brain, template_grid

BACKGROUND = -1.0  # network value outside the head ([-1, 1] scaling)


def crop_pad(volume: np.ndarray, start: Sequence[int], shape: Sequence[int], fill: float) -> np.ndarray:
    """The box ``volume[start : start + shape]`` (per axis); parts outside ``volume`` are ``fill``.

    ``start`` may be negative and the box may run past the end (voxel units).
    """
    out = np.full(tuple(shape), fill, dtype=volume.dtype)
    src, dst = [], []
    for lo, size, n in zip(start, shape, volume.shape):
        a, b = max(lo, 0), min(lo + size, n)
        if b <= a:
            return out
        src.append(slice(a, b))
        dst.append(slice(a - lo, b - lo))
    out[tuple(dst)] = volume[tuple(src)]
    return out


@dataclass(frozen=True)
class VolumeGeometry:
    """Where the network volume sits on the template grid (voxels).

    template_shape: template grid shape (X, Y, Z). start: template voxel index of the network
    volume's voxel (0, 0, 0) (may be negative). shape: network volume shape.
    """

    template_shape: tuple[int, int, int]
    start: tuple[int, int, int]
    shape: tuple[int, int, int]

    @classmethod
    def from_dict(cls, stored: Mapping[str, Sequence[int]]) -> VolumeGeometry:
        """From its ``asdict`` form as stored in ``volumes.json`` / model files (lists)."""
        return cls(**{key: tuple(int(v) for v in stored[key]) for key in ("template_shape", "start", "shape")})

    def to_network(self, template_volume: np.ndarray, fill: float = BACKGROUND) -> np.ndarray:
        """Template-grid volume (X, Y, Z) -> network box ``shape`` (outside the grid: ``fill``)."""
        if tuple(template_volume.shape) != self.template_shape:
            raise ValueError(f"volume shape {template_volume.shape} is not the template grid {self.template_shape}")
        return crop_pad(template_volume, self.start, self.shape, fill)

    def to_template(self, network_volume: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Network volume ``shape`` -> template grid (voxels outside the box: ``fill``)."""
        if tuple(network_volume.shape) != self.shape:
            raise ValueError(f"volume shape {network_volume.shape} is not the network shape {self.shape}")
        return crop_pad(network_volume, tuple(-s for s in self.start), self.template_shape, fill)


def brain_box_geometry(
    brain_mask: np.ndarray,
    pad_multiple: int = 32,
    margin_vox: int = 0,
    shape: Sequence[int] | None = None,
) -> VolumeGeometry:
    """Geometry of the brain bounding box (+ ``margin_vox``) centred in a box of ``shape`` or, if
    None, of the bounding box size rounded up to a multiple of ``pad_multiple`` (voxels)."""
    if not brain_mask.any():
        raise ValueError("the template brain mask is empty")
    idx = np.argwhere(brain_mask)
    lo, hi = idx.min(axis=0) - margin_vox, idx.max(axis=0) + margin_vox
    size = hi - lo + 1
    if shape is None:
        box = -(-size // pad_multiple) * pad_multiple
    else:
        box = np.asarray(shape, dtype=int)
        if np.any(box < size):
            raise ValueError(
                f"volumes.shape {list(box)} is smaller than the brain bounding box {list(size)} (voxels); "
                f"set volumes.shape to at least that, or to null for automatic padding"
            )
    start = lo - (box - size) // 2
    return VolumeGeometry(tuple(int(n) for n in brain_mask.shape), tuple(int(s) for s in start),
                          tuple(int(b) for b in box))


def full_grid_geometry(template_shape: Sequence[int], pad_multiple: int = 32) -> VolumeGeometry:
    """No crop: the whole template grid, centred and padded to multiples of ``pad_multiple``."""
    size = np.asarray(template_shape, dtype=int)
    box = -(-size // pad_multiple) * pad_multiple
    return VolumeGeometry(tuple(int(n) for n in size), tuple(int(s) for s in -((box - size) // 2)),
                          tuple(int(b) for b in box))


def volume_geometry(section: Mapping[str, Any], resolution_mm: float, mask_path: str | None = None) -> VolumeGeometry:
    """Geometry from config section ``volumes`` and the template (``template.resolution_mm``,
    optional ``template.mask_path``)."""
    pad_multiple = int(section.get("pad_multiple", 32))
    if section.get("crop", "brain_bbox") == "none":
        return full_grid_geometry(template_grid(resolution_mm)[0], pad_multiple)
    mask = template_brain(resolution_mm, mask_path)
    return brain_box_geometry(mask, pad_multiple, int(section.get("margin_vox", 0)), section.get("shape"))
