# Stage: mri. (not built yet)
