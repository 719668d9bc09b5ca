"""Paper tables: means/sds per model and diagnosis, ablation order, files written."""

import numpy as np
import pandas as pd
import pytest

from mri2tau.evaluate.tables import paper_tables


def _rows() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for model in ["mcr_vqgan", "vqgan", "cgan", "mcr_vqgan_ms"]:
        for sub, dx in [("a", "CN"), ("b", "MCI"), ("c", "AD")]:
            for k in range(3):
                rows.append({"model": model, "sub": sub, "dx_group": dx, "slice": k,
                             "mse": rng.random() / 100, "psnr": 20 + rng.random(), "ssim": 0.8 + rng.random() / 10})
    return pd.DataFrame(rows)


def test_tables_values_order_and_files(tmp_path):
    rows = _rows()
    tables = paper_tables(rows, tmp_path)
    t1 = tables["table1_ablation"]
    assert t1["model"].tolist() == ["vqgan", "mcr_vqgan_ms", "mcr_vqgan"]  # cgan is not an ablation row
    t3 = tables["table3_models"].set_index("model")
    sel = rows[rows.model == "cgan"]
    assert t3.loc["cgan", "mse_mean"] == pytest.approx(sel["mse"].mean())
    assert t3.loc["cgan", "ssim_std"] == pytest.approx(sel["ssim"].std(ddof=1))
    assert t3.loc["cgan", "n"] == 9
    t4 = tables["table4_diagnosis"]
    assert t4[t4.model == "cgan"]["dx_group"].tolist() == ["CN", "MCI", "AD"]
    md = (tmp_path / "table3_models.md").read_text()
    assert "± " in md and "cgan" in md
    assert (tmp_path / "table4_diagnosis.tsv").exists()
