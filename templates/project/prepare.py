"""Write a reproducible synthetic regression data set: y = 3*x1 - 2*x2 + 0.5 + noise."""
import argparse
import csv
import os
import random

parser = argparse.ArgumentParser()
parser.add_argument("--rows", type=int, required=True)
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

rng = random.Random(args.seed)
os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
with open(args.out, "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["x1", "x2", "y"])
    for _ in range(args.rows):
        x1, x2 = rng.uniform(-1, 1), rng.uniform(-1, 1)
        writer.writerow([f"{x1:.6f}", f"{x2:.6f}", f"{3 * x1 - 2 * x2 + 0.5 + rng.gauss(0, 0.1):.6f}"])
print(f"wrote {args.rows} rows to {args.out}")
