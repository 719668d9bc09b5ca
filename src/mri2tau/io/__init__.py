"""Input/output: DICOM, NIfTI, BIDS, atomic writes."""
