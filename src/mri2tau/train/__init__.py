"""mri2tau.train."""
