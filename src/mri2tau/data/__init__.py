"""mri2tau.data."""
