# Stage: convert. (not built yet)
