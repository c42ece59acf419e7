"""Environments: recipes (what to install, and its key), the store that builds each once."""
