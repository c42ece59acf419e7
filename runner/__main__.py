"""`python -m mlproject.runner` is the `mlproject` command."""
from mlproject.runner.cli.main import entry

entry()
