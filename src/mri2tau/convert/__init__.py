"""Conversion stage: ADNI DICOM tree + clinical CSV -> selected MRI-PET pairs -> raw BIDS."""
