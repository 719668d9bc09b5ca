"""mri2tau.demo."""
