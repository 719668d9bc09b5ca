"""mri2tau.losses."""
