# Stage: slices. (not built yet)
