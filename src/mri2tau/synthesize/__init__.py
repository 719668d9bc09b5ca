"""Synthetic tau PET from MRI with a trained generator (``results/models/<model>/model.pt``).

Modules: :mod:`~mri2tau.synthesize.loading` (settings, the model file and its scaling),
:mod:`~mri2tau.synthesize.inference` (2D / 3D inference, one session -> SUVR),
:mod:`~mri2tau.synthesize.spaces` (value scales, template -> native, writing),
:mod:`~mri2tau.synthesize.rule` (rule ``synthesize``: every test session),
:mod:`~mri2tau.synthesize.cli` (``mri2tau synthesize``: one new scan, without Snakemake).

Spaces, units, scaling
----------------------
* Input: the template-space T1 (``T1_TEMPLATE``: N4, affine + SyN, brain-masked) and the
  template brain mask, both on the template grid (RAS+ voxel axes X = R, Y = A, Z = S).
* The T1 is scaled to [-1, 1] exactly as for training (:func:`mri2tau.data.slices.scale_t1`:
  brain percentiles, -1 outside the brain when ``mask_brain``), with the settings the model
  file carries (``info["data"]``: the slice/volume stage's meta) or, failing that, the config.
* 2D models run slice by slice: every axial slice of the padded ``grid`` cube that covers the
  template (or ``slice_range``, indices on the 256 reference grid as in the slice stage), in
  batches, display-oriented as in training. 3D models run on the volume box
  (:class:`mri2tau.data.geometry.VolumeGeometry`) with MONAI's sliding-window inferer (one window
  when the box equals the network's ``image_size``).
* Outputs (clipped to [-1, 1]) go back to standardized SUVR with the fixed SUVR window
  (:func:`mri2tau.data.slices.pet_from_unit`), 0 outside the brain when ``mask_brain``; then the
  by-manufacturer standardization is undone (the inverse of
  :func:`mri2tau.preprocess.harmonize.apply_map`) -> SUVR units. With
  ``harmonization.resolution_matching`` on, that SUVR stays at the matched resolution
  (``target_fwhm_mm``): the smoothing applied before standardization is not invertible.
* Written as NIfTI with the template's affine (``space-<TPL>``) and, through the inverse
  registration transforms (:func:`mri2tau.preprocess.registration.inverse_transforms`, linear
  interpolation), on the subject's native T1 grid (``space-T1w``).

Timing (``timing.tsv``): per session the generator's parameter count, seconds spent in the
network (``inference_s``, CUDA synchronised), the whole session (``total_s``), the process's peak resident memory (``peak_rss_mb``) and, on CUDA,
the peak allocated GPU memory (``peak_gpu_mb``).
"""

from mri2tau.synthesize.inference import axial_indices, infer_3d, synthesize_suvr
from mri2tau.synthesize.loading import LoadedModel, SynthSettings, load_model
from mri2tau.paths import synth_name
from mri2tau.synthesize.rule import synthesize_model
from mri2tau.synthesize.spaces import ModelScaling

__all__ = ["LoadedModel", "ModelScaling", "SynthSettings", "axial_indices", "infer_3d", "load_model", "synth_name",
           "synthesize_model", "synthesize_suvr"]
