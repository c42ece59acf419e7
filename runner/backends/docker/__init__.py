"""The docker backend: steps as containers of a Docker engine (see backend.py)."""
