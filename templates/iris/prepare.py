"""Split the Iris data into train and test sets, stratified by species, reproducibly."""
import argparse
import csv
import os
import random

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--test-fraction", type=float, required=True)
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

with open(args.data, newline="") as handle:
    reader = csv.reader(handle)
    header = next(reader)
    rows = list(reader)

by_class: dict = {}
for row in rows:
    by_class.setdefault(row[-1], []).append(row)
rng = random.Random(args.seed)
train, test = [], []
for species in sorted(by_class):
    members = by_class[species]
    rng.shuffle(members)
    cut = round(len(members) * args.test_fraction)
    test += members[:cut]
    train += members[cut:]

os.makedirs(args.out, exist_ok=True)
for name, part in (("train.csv", train), ("test.csv", test)):
    with open(os.path.join(args.out, name), "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(part)
print(f"{len(train)} training rows, {len(test)} test rows in {args.out}")
