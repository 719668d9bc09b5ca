"""mri2tau.evaluate."""
