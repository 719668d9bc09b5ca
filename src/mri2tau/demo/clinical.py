"""Who the demo subjects are: IDs, diagnoses, scanners, dates, planted PHI, ADNIMERGE rows.

Everything about subject ``index`` is drawn from its own random stream
(``SeedSequence(seed, spawn_key=(index, STREAM_CLINICAL))``), so a subject is the same whatever
the cohort size. Diagnoses, manufacturers and T1 orientations follow fixed cycles so that even
a 4-subject cohort has CN, MCI and AD, all three manufacturers, sagittal / axial / oblique
T1s, and one subject (the last) with an MRI-PET gap > 100 days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

STREAM_CLINICAL, STREAM_GEOMETRY, STREAM_T1, STREAM_SUVR, STREAM_PET = range(5)

DX_CYCLE = ("CN", "LMCI", "AD", "EMCI", "CN", "SMC")
DX_GROUP = {"CN": "CN", "SMC": "MCI", "EMCI": "MCI", "LMCI": "MCI", "AD": "AD"}
# ADNIMERGE's DX at baseline: SMC participants are cognitively normal
DX_ADNIMERGE = {"CN": "CN", "SMC": "CN", "EMCI": "MCI", "LMCI": "MCI", "AD": "Dementia"}
VENDOR_CYCLE = ("Siemens", "GE", "Philips")
MAX_PAIR_DAYS = 100

T1_DESCRIPTION = {
    "Siemens": "Accelerated Sagittal MPRAGE",
    "GE": "Accelerated Sag IR-FSPGR",
    "Philips": "ADNI_Sag3D MPRAGE",
}
PET_DESCRIPTION = "ADNI Brain PET: Raw Tau"
_SITES = (2, 3, 6, 11, 13, 19, 22, 23, 27, 31, 32, 33, 35, 37, 41, 53, 67, 70, 94, 98, 100, 114,
          126, 127, 130, 135, 137, 141, 153, 168, 177, 941)
_LAST = ("HARTWELL", "OKONKWO", "LINDQVIST", "MARCHETTI", "TANAKA", "FAIRBROTHER", "DELACROIX",
         "VASQUEZ", "KOWALCZYK", "ABERNATHY", "NAKAMURA", "PELLEGRINO", "OYELARAN", "STRAND",
         "BRENNAN", "CHAUDHARY", "WHITLOCK", "MOREAU", "HALVORSEN", "QUINTERO", "ASHBY",
         "ZIELINSKI", "DRUMMOND", "ESPINOZA")
_FIRST = ("MARGARET", "THEODORE", "ROSALIND", "BARNABY", "EVANGELINE", "CORNELIUS", "WINIFRED",
          "AUGUSTINE", "PHILIPPA", "ALISTAIR", "GENEVIEVE", "LEOPOLD", "HENRIETTA", "OSWALD",
          "CLEMENTINE", "RUPERT", "BEATRIX", "MONTGOMERY", "OPHELIA", "SEBASTIAN", "IMOGEN",
          "FERDINAND", "LAVINIA", "PERCIVAL")
_AGE = {"CN": (70.0, 6.0), "SMC": (71.0, 6.0), "EMCI": (71.0, 7.0), "LMCI": (73.0, 7.0), "AD": (75.0, 8.0)}
_MMSE = {"CN": 29.0, "SMC": 28.8, "EMCI": 28.2, "LMCI": 27.0, "AD": 22.5}
_CDRSB = {"CN": 0.05, "SMC": 0.1, "EMCI": 1.2, "LMCI": 1.8, "AD": 4.5}
_ADAS13 = {"CN": 9.0, "SMC": 9.5, "EMCI": 12.5, "LMCI": 18.0, "AD": 30.0}
_APOE4_P = {"CN": (0.7, 0.27, 0.03), "SMC": (0.65, 0.3, 0.05), "EMCI": (0.55, 0.37, 0.08),
            "LMCI": (0.45, 0.42, 0.13), "AD": (0.35, 0.45, 0.2)}


def subject_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """Independent random stream ``stream`` of subject ``index`` for cohort ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, stream)))


@dataclass
class SubjectPlan:
    """Identity, diagnosis, scanner and dates of one demo subject."""

    index: int
    rid: int
    site: int
    ptid: str
    sub: str
    dx_bl: str
    dx_group: str
    dx: str
    manufacturer: str
    t1_orientation: str
    t1_series_description: str
    pet_series_description: str
    t1_image_uid: int
    pet_image_uid: int
    t1_series_id: int
    pet_series_id: int
    mri_datetime: dt.datetime
    injection_datetime: dt.datetime
    gap_days: int
    age: float
    sex: str
    weight_kg: float
    education_years: int
    apoe4: int
    mmse: float
    cdrsb: float
    adas13: float
    planted_patient_name: str
    planted_patient_id: str
    planted_birth_date: str

    @property
    def pet_series_datetime(self) -> dt.datetime:
        """Start of the first frame (75 min after injection)."""
        return self.injection_datetime + dt.timedelta(minutes=75)

    @property
    def expected_pair(self) -> bool:
        """Whether MRI and PET are within the pairing window."""
        return self.gap_days <= MAX_PAIR_DAYS


def _orientation(index: int) -> str:
    """Subject 1 is the oblique T1; every 4th from subject 2 axial; the rest sagittal."""
    if index == 1:
        return "oblique"
    return "axial" if index % 4 == 2 else "sagittal"


def plan_subject(seed: int, index: int, n_subjects: int) -> SubjectPlan:
    """The plan of subject ``index`` of an ``n_subjects`` cohort with ``seed``."""
    rng = subject_rng(seed, index, STREAM_CLINICAL)
    dx_bl = DX_CYCLE[index % len(DX_CYCLE)]
    vendor = VENDOR_CYCLE[index % len(VENDOR_CYCLE)]
    rid = 6001 + 10 * index + int(rng.integers(0, 10))
    site = _SITES[(index + seed) % len(_SITES)]
    ptid = f"{site:03d}_S_{rid:04d}"
    day0 = dt.date(2017, 1, 2) + dt.timedelta(days=int(rng.integers(0, 1300)))
    day0 += dt.timedelta(days=(7 - day0.weekday()) % 7 if day0.weekday() >= 5 else 0)
    mri = dt.datetime.combine(day0, dt.time(8, 0)) + dt.timedelta(minutes=int(rng.integers(0, 480)),
                                                                  seconds=int(rng.integers(0, 60)))
    long_gap = n_subjects >= 2 and index == n_subjects - 1
    offset = int(rng.integers(120, 200)) if long_gap else int(rng.integers(-40, 61))
    injection = dt.datetime.combine(day0 + dt.timedelta(days=offset), dt.time(9, 30)) + dt.timedelta(
        minutes=int(rng.integers(0, 180)), seconds=int(rng.integers(0, 60)))
    mean_age, sd_age = _AGE[dx_bl]
    age = float(np.clip(round(rng.normal(mean_age, sd_age), 1), 56.0, 92.0))
    birth = day0 - dt.timedelta(days=int(age * 365.25) + int(rng.integers(0, 300)))
    sex = "Female" if rng.random() < 0.52 else "Male"
    return SubjectPlan(
        index=index, rid=rid, site=site, ptid=ptid, sub=ptid.replace("_", ""),
        dx_bl=dx_bl, dx_group=DX_GROUP[dx_bl], dx=DX_ADNIMERGE[dx_bl], manufacturer=vendor,
        t1_orientation=_orientation(index),
        t1_series_description=T1_DESCRIPTION[vendor], pet_series_description=PET_DESCRIPTION,
        t1_image_uid=1_000_000 + 1000 * index + int(rng.integers(0, 500)),
        pet_image_uid=1_000_500 + 1000 * index + int(rng.integers(0, 500)),
        t1_series_id=600_000 + 1000 * index + int(rng.integers(0, 500)),
        pet_series_id=600_500 + 1000 * index + int(rng.integers(0, 500)),
        mri_datetime=mri, injection_datetime=injection, gap_days=abs(offset),
        age=age, sex=sex, weight_kg=round(float(rng.uniform(50, 100)), 1),
        education_years=int(rng.integers(12, 21)), apoe4=int(rng.choice(3, p=_APOE4_P[dx_bl])),
        mmse=float(np.clip(round(rng.normal(_MMSE[dx_bl], 1.2)), 10, 30)),
        cdrsb=float(max(0.0, round(rng.normal(_CDRSB[dx_bl], 0.5) * 2) / 2)),
        adas13=float(max(0.0, round(rng.normal(_ADAS13[dx_bl], 3.0), 2))),
        planted_patient_name=f"{_LAST[(index + seed) % len(_LAST)]}^{_FIRST[(index // len(_LAST) + 7 * seed) % len(_FIRST)]}",
        planted_patient_id=f"MRN{int(rng.integers(100, 1000))}{index:04d}",
        planted_birth_date=birth.strftime("%Y%m%d"),
    )


def adnimerge_table(plans: list[SubjectPlan]) -> pd.DataFrame:
    """ADNIMERGE-shaped rows (one baseline visit per subject), columns in ADNIMERGE order."""
    rows = []
    for p in plans:
        exam = p.mri_datetime.date().isoformat()
        rows.append({
            "RID": p.rid, "COLPROT": "ADNI3", "ORIGPROT": "ADNI3", "PTID": p.ptid, "SITE": p.site,
            "VISCODE": "bl", "EXAMDATE": exam, "DX_bl": p.dx_bl, "AGE": p.age, "PTGENDER": p.sex,
            "PTEDUCAT": p.education_years, "PTETHCAT": "Not Hisp/Latino", "PTRACCAT": "White",
            "PTMARRY": "Married", "APOE4": p.apoe4, "CDRSB": p.cdrsb, "ADAS13": p.adas13,
            "MMSE": p.mmse, "FLDSTRENG": "3 Tesla MRI", "IMAGEUID": p.t1_image_uid, "DX": p.dx,
            "EXAMDATE_bl": exam, "CDRSB_bl": p.cdrsb, "ADAS13_bl": p.adas13, "MMSE_bl": p.mmse,
            "Years_bl": 0.0, "Month_bl": 0.0, "Month": 0, "M": 0,
            "update_stamp": "2021-05-01 04:00:00.0",
        })
    return pd.DataFrame(rows)


def cohort_table(plans: list[SubjectPlan]) -> pd.DataFrame:
    """``truth/cohort.tsv``: one row per subject (see docs/demo-cohort.md)."""
    rows = []
    for p in plans:
        d = asdict(p)
        rows.append({
            "ptid": p.ptid, "sub": p.sub, "rid": p.rid, "viscode": "bl", "dx_bl": p.dx_bl,
            "dx_group": p.dx_group, "manufacturer": p.manufacturer,
            "t1_orientation": p.t1_orientation,
            "t1_series_description": p.t1_series_description,
            "pet_series_description": p.pet_series_description,
            "t1_image_uid": p.t1_image_uid, "pet_image_uid": p.pet_image_uid,
            "mri_date": p.mri_datetime.date().isoformat(),
            "pet_date": p.injection_datetime.date().isoformat(),
            "gap_days": p.gap_days, "expected_pair": p.expected_pair,
            "planted_patient_name": d["planted_patient_name"],
            "planted_patient_id": d["planted_patient_id"],
            "planted_birth_date": d["planted_birth_date"],
        })
    return pd.DataFrame(rows)


def followup_rows(plans: list[SubjectPlan], days: int, viscode: str, image_offset: int) -> pd.DataFrame:
    """ADNIMERGE rows of a follow-up visit ``days`` after each plan's baseline (same diagnosis;
    AGE stays the baseline age, as in ADNIMERGE)."""
    rows = adnimerge_table(plans)
    exam = pd.to_datetime(rows["EXAMDATE"]) + pd.Timedelta(days=days)
    months = round(days / 30.4375)
    return rows.assign(VISCODE=viscode, EXAMDATE=exam.dt.strftime("%Y-%m-%d"), IMAGEUID=rows["IMAGEUID"] + image_offset,
                       Years_bl=round(days / 365.25, 4), Month_bl=float(months), Month=months, M=months)


def visits_table(plans: list[SubjectPlan], followups: list[SubjectPlan], days: int, viscode: str) -> pd.DataFrame:
    """``truth/visits.tsv``: every tau PET visit (``bl`` for all, ``viscode`` for ``followups``) with
    its MRI and PET dates and whether it pairs within the window."""
    base = cohort_table(plans)[["ptid", "sub", "viscode", "mri_date", "pet_date", "gap_days", "expected_pair"]]
    later = base[base["ptid"].isin([p.ptid for p in followups])].copy()
    for column in ("mri_date", "pet_date"):
        later[column] = (pd.to_datetime(later[column]) + pd.Timedelta(days=days)).dt.strftime("%Y-%m-%d")
    return pd.concat([base, later.assign(viscode=viscode)], ignore_index=True)
