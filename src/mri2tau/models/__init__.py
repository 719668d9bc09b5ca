"""mri2tau.models."""
