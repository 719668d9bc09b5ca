"""mri2tau.preprocess."""
