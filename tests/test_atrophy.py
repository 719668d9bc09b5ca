"""Disease-coupled atrophy of the demo cohort: the T1 carries the tau signal, the truth stays exact.

* the regional volume change recorded in ``truth/sub-*/atrophy.tsv`` is what the written
  template -> native coordinate field implies (its Jacobian), and the mapping round-trips;
* atrophy follows tau: hippocampal volume falls with Braak I-II SUVR across a cohort (|r| > 0.4)
  and the AD subject's medial temporal lobe shrinks and its ventricles grow more than the CN one's.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mri2tau.demo import anatomy
from mri2tau.demo.atrophy import (
    STREAM_ATROPHY,
    cohort_link,
    jacobian_determinant,
    region_mask,
    subject_atrophy,
    subject_link,
)
from mri2tau.demo.clinical import DX_CYCLE, STREAM_GEOMETRY, STREAM_SUVR, plan_subject, subject_rng
from mri2tau.demo.deform import grid_points, random_deformation, template_lattice
from mri2tau.templates import template_grid

VOXEL_MM = 4.0


@pytest.mark.slow
def test_truth_volume_change_is_the_jacobian_of_the_truth_field(demo_cohort):
    table = pd.read_csv(demo_cohort / "truth" / "cohort.tsv", sep="\t", dtype={"sub": str})
    changes = {}
    for row in table.itertuples():
        folder = demo_cohort / "truth" / f"sub-{row.sub}"
        atrophy = pd.read_csv(folder / "atrophy.tsv", sep="\t")
        coords = nib.load(folder / "template_to_native_coords.nii.gz").get_fdata(dtype=np.float32)
        _, affine = template_grid(VOXEL_MM)
        # native mm minus template mm of every template voxel = the displacement, rotated by the rigid
        # part (a rotation does not change the determinant)
        rigid = np.loadtxt(folder / "rigid_template_to_native.txt")
        template_mm = grid_points(coords.shape[:3], affine)
        local = np.linalg.inv(rigid)[:3, :3] @ np.moveaxis(coords, -1, 0).reshape(3, -1)
        local = local.reshape(3, *coords.shape[:3]) + np.linalg.inv(rigid)[:3, 3].reshape(3, 1, 1, 1)
        det = jacobian_determinant(local - template_mm, VOXEL_MM)
        for r in atrophy.itertuples():
            measured = det[region_mask(r.region, r.hemi, VOXEL_MM)].mean()
            assert measured == pytest.approx(r.jacobian_total, abs=0.01), (row.sub, r.region, r.hemi)
            assert r.volume_change_total == pytest.approx(r.jacobian_total * (1 - r.pv_fraction) - 1, abs=1e-5)
        changes[row.dx_bl] = atrophy.groupby("region")["volume_change_atrophy"].mean()
    for region in ("hippocampus", "entorhinal", "amygdala"):
        assert changes["AD"][region] < changes["CN"][region] - 0.1, region
    assert changes["AD"]["ventricles"] > changes["CN"]["ventricles"] + 0.2


@pytest.mark.slow
def test_mapping_round_trips_exactly_for_a_strongly_atrophying_subject():
    plan = plan_subject(0, 2, 4)
    assert plan.dx_bl == "AD"
    _, params = anatomy.subject_suvr(subject_rng(0, 2, STREAM_SUVR), plan.dx_bl, VOXEL_MM)
    atrophy = subject_atrophy(subject_rng(0, 2, STREAM_ATROPHY), params["braak_elevation"], plan.age,
                              template_lattice())
    deformation, _ = random_deformation(subject_rng(0, 2, STREAM_GEOMETRY), before=atrophy.u)
    shape, affine = template_grid(2.0)
    x = grid_points(shape, affine)
    back = deformation.native_to_template(deformation.template_to_native(x))
    assert np.linalg.norm(back - x, axis=0).max() < 0.05
    native_grid = deformation.rigid @ affine
    exact = deformation.native_to_template_grid(shape, native_grid, exact=True)
    np.testing.assert_allclose(exact, deformation.native_to_template(grid_points(shape, native_grid)), atol=1e-4)
    # the calibration reaches the targets (region means on the 2 mm grid)
    assert np.abs(atrophy.table["jacobian_atrophy"] / atrophy.table["jacobian_target"] - 1).max() < 0.03


@pytest.mark.slow
def test_hippocampal_volume_falls_with_braak12_tau_across_a_cohort():
    """18 subjects (three diagnosis cycles) of the seed-0 cohort, without rendering images."""
    link = pd.DataFrame([subject_link(0, index, 100, VOXEL_MM) for index in range(3 * len(DX_CYCLE))])
    assert np.corrcoef(link["hippocampus_ml"], link["braak12_suvr"])[0, 1] < -0.4
    assert np.corrcoef(link["ventricles_ml"], link["braak12_suvr"])[0, 1] > 0.4


@pytest.mark.slow
def test_cohort_link_reads_the_generated_truth(demo_cohort):
    link = cohort_link(demo_cohort / "truth").set_index("dx_bl")
    assert list(link.columns[-4:]) == ["hippocampus_ml", "ventricles_ml", "braak12_suvr", "braak12_suvr_vendor"]
    assert link.loc["AD", "hippocampus_ml"] < link.loc["CN", "hippocampus_ml"]
    assert link.loc["AD", "braak12_suvr"] > link.loc["CN", "braak12_suvr"] + 0.3
