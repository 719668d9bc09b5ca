# Stage: synthesize. (not built yet)
