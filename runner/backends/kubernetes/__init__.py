"""The kubernetes backend: a step is a batch/v1 Job whose pod runs mlproject's worker (see
backend.py)."""
