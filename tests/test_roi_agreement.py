"""ROI SUVR agreement: ICC against the Shrout & Fleiss (1979) worked example, Pearson, MAE."""

import numpy as np
import pandas as pd
import pytest

from mri2tau.evaluate.roi import agreement_table, icc_2_1, roi_means

# Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges; published ICC(2,1) = 0.29.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], dtype=float
)


def test_icc_matches_published_value():
    assert icc_2_1(SHROUT_FLEISS) == pytest.approx(0.29, abs=0.005)


def test_icc_perfect_and_biased_agreement():
    a = np.array([1.0, 1.2, 1.5, 2.0, 2.5])
    assert icc_2_1(np.column_stack([a, a])) == pytest.approx(1.0)
    # a constant offset lowers absolute-agreement ICC but not Pearson r
    table = agreement_table(pd.DataFrame({"braak1": a}), pd.DataFrame({"braak1": a + 0.5}))
    row = table.iloc[0]
    assert row["pearson_r"] == pytest.approx(1.0)
    assert row["icc"] < 0.9
    assert row["mae"] == pytest.approx(0.5)


def test_roi_means_and_errors():
    vol = np.zeros((4, 4, 4))
    vol[:2] = 2.0
    mask = np.zeros_like(vol, bool)
    mask[:2, :2] = True
    assert roi_means(vol, {"a": mask}) == {"a": 2.0}
    with pytest.raises(ValueError, match="empty"):
        roi_means(vol, {"a": np.zeros_like(mask)})
    with pytest.raises(ValueError, match="different subjects"):
        agreement_table(pd.DataFrame({"a": [1.0]}, index=["x"]), pd.DataFrame({"a": [1.0]}, index=["y"]))
