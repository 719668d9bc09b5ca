# Stage: pet. (not built yet)
