"""Test helpers: a private one-node SLURM cluster (cluster.py) and running the workflow in a
throw-away working directory with exact job-set parsing (runner.py)."""
