"""Fit a softmax (multinomial logistic) regression by full-batch gradient descent, with the
standard library only, and write the model as JSON."""
import argparse
import csv
import json
import math
import os

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--epochs", type=int, required=True)
parser.add_argument("--learning-rate", type=float, required=True)
parser.add_argument("--l2", type=float, required=True)
parser.add_argument("--model", required=True)
args = parser.parse_args()

with open(args.data, newline="") as handle:
    reader = csv.reader(handle)
    features = next(reader)[:-1]
    rows = list(reader)
classes = sorted({row[-1] for row in rows})
X = [[float(v) for v in row[:-1]] for row in rows]
y = [classes.index(row[-1]) for row in rows]

# standardize with the training set's statistics (kept in the model for prediction)
n, d, k = len(X), len(features), len(classes)
mean = [sum(x[j] for x in X) / n for j in range(d)]
std = [math.sqrt(sum((x[j] - mean[j]) ** 2 for x in X) / n) or 1.0 for j in range(d)]
Z = [[(x[j] - mean[j]) / std[j] for j in range(d)] + [1.0] for x in X]

W = [[0.0] * (d + 1) for _ in range(k)]
for _ in range(args.epochs):
    grad = [[0.0] * (d + 1) for _ in range(k)]
    for z, target in zip(Z, y):
        scores = [sum(w * v for w, v in zip(W[c], z)) for c in range(k)]
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        total = sum(exps)
        for c in range(k):
            error = exps[c] / total - (1.0 if c == target else 0.0)
            for j in range(d + 1):
                grad[c][j] += error * z[j] / n
    for c in range(k):
        for j in range(d + 1):
            W[c][j] -= args.learning_rate * (grad[c][j] + (args.l2 * W[c][j] if j < d else 0.0))

os.makedirs(os.path.dirname(args.model) or ".", exist_ok=True)
with open(args.model, "w") as handle:
    json.dump({"classes": classes, "features": features, "mean": mean, "std": std,
               "weights": [[round(w, 12) for w in row] for row in W]}, handle, indent=2)
    handle.write("\n")
print(f"trained on {n} rows, {k} classes, {args.epochs} epochs")
