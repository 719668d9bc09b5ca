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


def test_every_table_compares_with_the_mean_floor(tmp_path):
    """With a ``mean`` row: a model's brain MSE over the floor's, per table and per diagnosis group."""
    rows = _rows()
    rows = pd.concat([rows, rows[rows.model == "cgan"].assign(model="mean", mse=lambda d: d["mse"] * 2)])
    rows["mse_brain"], rows["psnr_brain"], rows["ssim_brain"] = rows["mse"] * 3, rows["psnr"], rows["ssim"]
    rows.loc[(rows.model == "mean") & (rows.dx_group == "AD"), "mse_brain"] *= 5
    tables = paper_tables(rows, tmp_path)
    t3 = tables["table3_models"].set_index("model")
    assert t3.index[0] == "mean" and t3.loc["mean", "mse_brain_vs_mean"] == pytest.approx(1.0)
    assert t3.loc["vqgan", "mse_brain_vs_mean"] == pytest.approx(t3.loc["vqgan", "mse_brain_mean"]
                                                                 / t3.loc["mean", "mse_brain_mean"])
    t4 = tables["table4_diagnosis"].set_index(["model", "dx_group"])
    assert t4.loc[("cgan", "CN"), "mse_brain_vs_mean"] == pytest.approx(0.5)  # the floor is 2x cgan
    assert t4.loc[("cgan", "AD"), "mse_brain_vs_mean"] == pytest.approx(0.1)  # ... and 10x in AD
    assert "MSE (brain) / mean" in (tmp_path / "table3_models.md").read_text()
    assert "mse_brain_vs_mean" not in paper_tables(_rows(), tmp_path / "no_floor")["table3_models"]
