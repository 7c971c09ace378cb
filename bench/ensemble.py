#!/usr/bin/python3
"""Holdout errors of the mean of several networks' predictions.

Each FILE holds one network's output for every row of the holdout CSV, one
per line, as `trainer_bench staged --predictions FILE` writes it. Prints
each network alone, then the mean of the first k networks for k = 2..n:
max abs error, fractions within 1e-5 and 1e-6, RMSE. With --margins, a
second table gives the max abs error over the rows whose inputs are at
least each margin (a fraction of every input's range on the holdout rows)
away from the faces of their box: where the maximum is set. Standard
library only.

  bench/ensemble.py --holdout ../shared/tasks/hartmann3/holdout.csv \
    --margins 0.01,0.02,0.05 s1.txt s2.txt
"""
import argparse
import csv
import math


def read_rows(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def distances_to_faces(rows, output):
    """Per row, the smallest distance of an input to its column's minimum or
    maximum over the rows, as a fraction of that column's range."""
    inputs = [c for c in rows[0] if c != output]
    lo = {c: min(float(r[c]) for r in rows) for c in inputs}
    hi = {c: max(float(r[c]) for r in rows) for c in inputs}
    return [min(min(float(r[c]) - lo[c], hi[c] - float(r[c])) /
                (hi[c] - lo[c]) for c in inputs if hi[c] > lo[c])
            for r in rows]


def read_predictions(path, rows):
    with open(path) as f:
        values = [float(line) for line in f if line.strip()]
    if len(values) != rows:
        raise SystemExit('%s: %d predictions for %d holdout rows'
                         % (path, len(values), rows))
    return values


def summary(e):
    """Max, fractions within 1e-5 and 1e-6, and RMSE of absolute errors."""
    n = len(e)
    return (max(e), sum(x <= 1e-5 for x in e) / n,
            sum(x <= 1e-6 for x in e) / n,
            math.sqrt(sum(x * x for x in e) / n))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--holdout', required=True, help='holdout CSV')
    parser.add_argument('--output', default='y', help='target column')
    parser.add_argument('--margins', default='',
                        help='comma-separated margins from the faces')
    parser.add_argument('files', nargs='+', help='prediction files')
    args = parser.parse_args()
    holdout = read_rows(args.holdout)
    target = [float(r[args.output]) for r in holdout]
    runs = [read_predictions(f, len(target)) for f in args.files]
    networks = list(zip(args.files, runs)) + [
        ('mean of the first %d' % k,
         [sum(values) / k for values in zip(*runs[:k])])
        for k in range(2, len(runs) + 1)]
    # Absolute errors, one list per network.
    errors = [(name, [abs(p - t) for p, t in zip(predicted, target)])
              for name, predicted in networks]
    print('| networks | holdout max abs error | within 1e-5 | within 1e-6 '
          '| holdout RMSE |')
    print('|---|---|---|---|---|')
    for name, e in errors:
        m, w5, w6, rmse = summary(e)
        print('| %s | %.2e | %.1f%% | %.2f%% | %.1e |'
              % (name, m, 100 * w5, 100 * w6, rmse))
    if not args.margins:
        return
    margins = [float(m) for m in args.margins.split(',')]
    faces = distances_to_faces(holdout, args.output)
    inside = [[d >= m for d in faces] for m in margins]
    print()
    print('| networks | all rows | ' + ' | '.join(
        '>= %g from the faces (%d rows)' % (m, sum(keep))
        for m, keep in zip(margins, inside)) + ' |')
    print('|---|---|' + '---|' * len(margins))
    for name, e in errors:
        print('| %s | %.2e | ' % (name, max(e)) + ' | '.join(
            '%.2e' % max(x for x, k in zip(e, keep) if k) for keep in inside)
            + ' |')


if __name__ == '__main__':
    main()
