#!/usr/bin/env python3
"""The whole evonas flow from Python: upload a training and a holdout set,
search, watch, read the Pareto front, download the most accurate model (its
refit on all rows, when there is one) and check it with PyTorch on the
holdout rows.

    clients/python/generate_stubs.sh /tmp/evonas-stubs
    EVONAS_TOKEN=... PYTHONPATH=/tmp/evonas-stubs:clients/python \
        /usr/bin/python3 clients/python/example.py \
        --controller localhost:50051 --tls-ca certs/cert.pem \
        --train data/hartmann3/train.csv --holdout data/hartmann3/holdout.csv
"""

import argparse
import csv
import os
import sys
import tempfile

from evonas.v1 import types_pb2
from evonas_client import Client


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--controller",
                        default=os.environ.get("EVONAS_CONTROLLER",
                                               "localhost:50051"))
    parser.add_argument("--tls-ca", default=os.environ.get("EVONAS_TLS_CA"),
                        help="PEM certificate to trust (default "
                        "$EVONAS_TLS_CA, else the system's roots)")
    parser.add_argument("--plaintext", action="store_true",
                        help="connect without TLS")
    # The token comes from $EVONAS_TOKEN: a flag would show in `ps`.
    parser.add_argument("--train", required=True)
    parser.add_argument("--holdout", required=True)
    parser.add_argument("--inputs", default="x1,x2,x3")
    parser.add_argument("--outputs", default="y")
    parser.add_argument("--budget-candidates", type=int, default=6)
    parser.add_argument("--max-abs-error", type=float, default=1e-2)
    parser.add_argument("--max-adam-steps", type=int, default=0,
                        help="cap training steps (0: the server's default)")
    parser.add_argument("--max-width", type=int, default=0,
                        help="cap layer widths (0: the server's default)")
    parser.add_argument("--refit", type=int, default=1,
                        help="front members trained again on all rows "
                        "after the search (0: none)")
    args = parser.parse_args()

    client = Client(args.controller, tls_ca=args.tls_ca,
                    plaintext=args.plaintext)
    train = client.upload_dataset(args.train)
    holdout = client.upload_dataset(args.holdout)
    print(f"uploaded {train.name}: {train.row_count} rows, id {train.id[:12]}")

    spec = types_pb2.ExperimentSpec(
        name="python-example",
        dataset_id=train.id,
        test_dataset_id=holdout.id,
        input_columns=args.inputs.split(","),
        output_columns=args.outputs.split(","),
        requirements=types_pb2.Requirements(max_abs_error=args.max_abs_error),
        budget=types_pb2.Budget(max_candidates=args.budget_candidates),
        seed=1,
        refit=types_pb2.RefitSettings(front_members=args.refit))
    if args.max_adam_steps:
        spec.search_space.min_adam_steps = min(100, args.max_adam_steps)
        spec.search_space.max_adam_steps = args.max_adam_steps
        spec.search_space.lbfgs_steps = 20
    if args.max_width:
        spec.search_space.min_width = min(8, args.max_width)
        spec.search_space.max_width = args.max_width
    experiment = client.create_experiment(spec)
    print(f"experiment {experiment.id} created")

    def progress(e):
        c = e.counts
        print(f"  {types_pb2.ExperimentState.Name(e.state)}: {c.succeeded} "
              f"succeeded, {c.running} running, {c.failed} failed")

    experiment = client.wait(experiment.id, poll_seconds=1, timeout=900,
                             on_progress=progress)
    front = client.pareto_front(experiment.id)
    print(f"Pareto front ({len(front.candidates)} candidates, "
          f"feasible: {front.has_feasible}):")
    for c in front.candidates:
        m = c.metrics
        print(f"  {c.id}  val max err {m.validation.max_abs_error:.3e}  "
              f"holdout max err {m.test.max_abs_error:.3e}  "
              f"params {m.parameter_count}")
    for r in front.refits:
        print(f"  {r.id}  refit of {r.refit_of} on "
              f"all rows: {types_pb2.CandidateState.Name(r.state)}, holdout "
              f"max err {r.metrics.test.max_abs_error:.3e}")
    if not front.candidates:
        sys.exit("no candidate succeeded")

    # The network to ship: the most accurate member, retrained on all rows
    # when its refit succeeded.
    best = front.candidates[0]
    for r in front.refits:
        if (r.refit_of == best.id and
                r.state == types_pb2.CANDIDATE_STATE_SUCCEEDED):
            best = r
    path = os.path.join(tempfile.mkdtemp(), "best.pt")
    client.download_model(best.id, path)

    import torch  # Debian's python3-torch
    model = torch.jit.load(path)
    inputs, outputs = args.inputs.split(","), args.outputs.split(",")
    with open(args.holdout) as f:
        rows = list(csv.DictReader(f))
    x = torch.tensor([[float(r[c]) for c in inputs] for r in rows],
                     dtype=torch.float64)
    y = torch.tensor([[float(r[c]) for c in outputs] for r in rows],
                     dtype=torch.float64)
    error = (model(x) - y).abs().max().item()
    reported = best.metrics.test.max_abs_error
    print(f"holdout max abs error in PyTorch: {error:.6e} "
          f"(evonas reported {reported:.6e})")
    if abs(error - reported) > 1e-9 * max(1.0, reported):
        sys.exit("the downloaded model does not reproduce the reported error")
    client.close()


if __name__ == "__main__":
    main()
