"""The synthetic ADNI-like demo cohort (docs/demo-cohort.md).

Modules: ``clinical`` (who: IDs, diagnoses, vendors, dates, PHI, ADNIMERGE rows), ``deform``
(template <-> native warps), ``scanner`` (image grids), ``anatomy`` (true SUVR, vendor effect),
``t1`` and ``pet`` (image rendering), ``dicom_series`` (ADNI-like DICOM series), ``cohort``
(orchestration: :func:`mri2tau.demo.cohort.generate_cohort`), ``cli`` (``mri2tau demo-cohort``).
"""
