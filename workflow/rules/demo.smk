# Stage: demo. (not built yet)
