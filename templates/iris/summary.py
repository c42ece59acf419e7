"""Summarize the evaluation's metrics as a small Markdown table: the end of the pipeline that
`mlproject run .` runs."""
import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--metrics", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()
with open(args.metrics) as handle:
    metrics = json.load(handle)
lines = ["| metric | value |", "|---|---|"]
lines += [f"| {name} | {value:.4f} |" for name, value in sorted(metrics.items())]
os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
with open(args.out, "w") as handle:
    handle.write("\n".join(lines) + "\n")
print(" ".join(f"{name}={value:.4f}" for name, value in sorted(metrics.items())))
