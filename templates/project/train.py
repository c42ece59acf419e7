"""Fit a ridge regression in closed form (standard library only) and write model and metrics."""
import argparse
import csv
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float, required=True)
parser.add_argument("--data", required=True)
parser.add_argument("--model", required=True)
parser.add_argument("--metrics", required=True)
args = parser.parse_args()

with open(args.data, newline="") as handle:
    rows = [[float(v) for v in row] for row in list(csv.reader(handle))[1:]]
X = [[1.0, r[0], r[1]] for r in rows]
y = [r[2] for r in rows]

# Normal equations (X'X + alpha*I) w = X'y, solved by Gaussian elimination.
n = 3
A = [[sum(x[i] * x[j] for x in X) + (args.alpha if i == j and i > 0 else 0.0) for j in range(n)]
     for i in range(n)]
b = [sum(x[i] * t for x, t in zip(X, y)) for i in range(n)]
for col in range(n):
    pivot = max(range(col, n), key=lambda r: abs(A[r][col]))
    A[col], A[pivot], b[col], b[pivot] = A[pivot], A[col], b[pivot], b[col]
    for r in range(col + 1, n):
        f = A[r][col] / A[col][col]
        A[r] = [a - f * c for a, c in zip(A[r], A[col])]
        b[r] -= f * b[col]
w = [0.0] * n
for r in reversed(range(n)):
    w[r] = (b[r] - sum(A[r][c] * w[c] for c in range(r + 1, n))) / A[r][r]

pred = [sum(wi * xi for wi, xi in zip(w, x)) for x in X]
mean = sum(y) / len(y)
ss_res = sum((t - p) ** 2 for t, p in zip(y, pred))
ss_tot = sum((t - mean) ** 2 for t in y)
metrics = {"r2": 1 - ss_res / ss_tot, "rmse": (ss_res / len(y)) ** 0.5}

os.makedirs(os.path.dirname(args.model) or ".", exist_ok=True)
with open(args.model, "w") as handle:
    json.dump({"intercept": w[0], "coef": w[1:], "alpha": args.alpha}, handle, indent=2)
with open(args.metrics, "w") as handle:
    json.dump(metrics, handle, indent=2)
print(f"r2={metrics['r2']:.4f} rmse={metrics['rmse']:.4f}")
