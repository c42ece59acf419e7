"""`python -m mlproject.runner.worker`: run one step of a serialized plan (see step.py)."""
import sys

from mlproject.runner.worker.step import main

sys.exit(main(sys.argv[1:]))
