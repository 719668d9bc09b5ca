# Stage: evaluate. (not built yet)
