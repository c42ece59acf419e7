"""Sweeps: an entry point run at many points of its parameters (`mlproject sweep`). points.py
makes the points (pure), store.py keeps a sweep's file, table.py shows its results, and run.py
runs the points on a backend, several at once."""
