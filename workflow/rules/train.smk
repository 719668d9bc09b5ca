# Stage: train. (not built yet)
