"""QC pictures: three orthogonal views of a volume with edges or a colour overlay (matplotlib Agg).

Arrays are on one RAS+ grid (e.g. the template grid, isotropic voxels); views are drawn in
neurological convention (subject's left on the picture's left), labelled.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from skimage.feature import canny  # noqa: E402

from mri2tau.io.atomic import write_png_atomic  # noqa: E402

VIEWS = ("sagittal", "coronal", "axial")


def _view(volume: np.ndarray, view: str, index: int) -> np.ndarray:
    """A 2D slice oriented for ``imshow(origin="lower")``: rows = superior/anterior axis."""
    if view == "sagittal":
        return volume[index, :, :].T  # horizontal: posterior->anterior, vertical: inferior->superior
    if view == "coronal":
        return volume[:, index, :].T  # horizontal: left->right
    return volume[:, :, index].T  # axial: horizontal left->right, vertical posterior->anterior


def slice_edges(image_2d: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Canny edges (bool) of a 2D slice after robust [0, 1] scaling."""
    lo, hi = np.percentile(image_2d, [1, 99])
    if hi <= lo:
        return np.zeros(image_2d.shape, dtype=bool)
    return canny(np.clip((image_2d - lo) / (hi - lo), 0, 1), sigma=sigma)


def centre_voxel(volume: np.ndarray) -> tuple[int, int, int]:
    """Voxel index of the intensity-weighted centre of the positive part of ``volume``."""
    weights = np.clip(np.nan_to_num(volume), 0, None)
    if weights.sum() == 0:
        return tuple(s // 2 for s in volume.shape[:3])  # type: ignore[return-value]
    grid = np.indices(volume.shape[:3]).reshape(3, -1)
    centre = grid @ weights.ravel() / weights.sum()
    return tuple(int(round(c)) for c in centre)  # type: ignore[return-value]


def three_view_png(
    background: np.ndarray,
    out_png: str | Path,
    *,
    edges_of: np.ndarray | None = None,
    overlay: np.ndarray | None = None,
    overlay_range: tuple[float, float] | None = None,
    overlay_label: str = "",
    title: str = "",
    centre: tuple[int, int, int] | None = None,
) -> None:
    """Write a PNG with sagittal, coronal and axial views through ``centre`` (voxel index).

    ``background``: grey image (3D). ``edges_of``: a 3D image (same grid) whose Canny edges are
    drawn in red on top (e.g. the template over a registered T1). ``overlay``: a 3D map drawn in
    colour where positive (e.g. SUVR over a T1), range ``overlay_range``.
    """
    centre = centre or centre_voxel(background)
    hi = float(np.percentile(background[background > 0], 99.8)) if (background > 0).any() else 1.0
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), facecolor="black")
    image = None
    for ax, view, index in zip(axes, VIEWS, centre, strict=True):
        ax.imshow(_view(background, view, index), cmap="gray", vmin=0.0, vmax=hi, origin="lower",
                  interpolation="nearest")
        if overlay is not None:
            ov = _view(overlay, view, index)
            vmin, vmax = overlay_range or (float(np.nanmin(overlay)), float(np.nanmax(overlay)))
            image = ax.imshow(np.ma.masked_less_equal(ov, 0), cmap="hot", vmin=vmin, vmax=vmax,
                              origin="lower", alpha=0.6, interpolation="nearest")
        if edges_of is not None:
            edges = slice_edges(_view(edges_of, view, index))
            ax.imshow(np.ma.masked_where(~edges, edges), cmap="autumn", origin="lower", alpha=0.9,
                      interpolation="nearest")
        ax.set_title(f"{view} {index}", color="white", fontsize=9)
        if view != "sagittal":
            ax.text(0.01, 0.01, "L", color="yellow", transform=ax.transAxes, fontsize=9)
            ax.text(0.97, 0.01, "R", color="yellow", transform=ax.transAxes, fontsize=9)
        ax.axis("off")
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes), fraction=0.02, pad=0.01)
        bar.set_label(overlay_label, color="white")
        bar.ax.tick_params(colors="white")
    fig.suptitle(title, color="white", fontsize=10)
    write_png_atomic(fig, out_png, dpi=100, facecolor="black")
