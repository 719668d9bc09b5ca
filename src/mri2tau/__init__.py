"""mri2tau: ADNI DICOM (T1w MRI + flortaucipir tau PET) -> synthetic tau PET from MRI."""

__version__ = "0.1.0"
