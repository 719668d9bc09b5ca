# Stage: split. (not built yet)
