"""mri2tau.presets."""
