"""Score the model on the held-out rows: accuracy and macro-averaged F1, written as JSON."""
import argparse
import csv
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--data", required=True)
parser.add_argument("--predictions", required=True)
parser.add_argument("--metrics", required=True)
args = parser.parse_args()

with open(args.model) as handle:
    model = json.load(handle)
with open(args.data, newline="") as handle:
    rows = list(csv.reader(handle))[1:]
classes = model["classes"]


def predict(values):
    z = [(v - m) / s for v, m, s in zip(values, model["mean"], model["std"])] + [1.0]
    scores = [sum(w * v for w, v in zip(row, z)) for row in model["weights"]]
    return classes[scores.index(max(scores))]


pairs = [(row[-1], predict([float(v) for v in row[:-1]])) for row in rows]
accuracy = sum(truth == guess for truth, guess in pairs) / len(pairs)
f1s = []
for species in classes:
    tp = sum(t == species and g == species for t, g in pairs)
    fp = sum(t != species and g == species for t, g in pairs)
    fn = sum(t == species and g != species for t, g in pairs)
    f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
metrics = {"accuracy": round(accuracy, 6), "macro_f1": round(sum(f1s) / len(f1s), 6)}

os.makedirs(os.path.dirname(args.predictions) or ".", exist_ok=True)
with open(args.predictions, "w", newline="") as handle:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(["species", "predicted"])
    writer.writerows(pairs)
os.makedirs(os.path.dirname(args.metrics) or ".", exist_ok=True)
with open(args.metrics, "w") as handle:
    json.dump(metrics, handle, indent=2, sort_keys=True)
    handle.write("\n")
print(f"accuracy={metrics['accuracy']:.4f} macro_f1={metrics['macro_f1']:.4f} on {len(pairs)} rows")
