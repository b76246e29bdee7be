r"""Scaling analysis of a sweep: isoFLOP optima, compute frontiers and the crossover between families.

Reads SWEEP_DIR/results.jsonl (written by `masked-mixers sweep`; the latest line per point wins).
Per context length L and family: each budget's loss against model size N (each size at its best
learning rate) is fitted by a parabola in ln N, whose vertex is the compute-optimal size and loss
(fewer than 3 sizes, a parabola opening downward or a vertex outside the measured sizes: the best
measured point, flagged as a bound); the optima give the frontier L*(C) = a * C^(-b), with an
irreducible E where the data support it (>= 4 budgets and a lower leave-one-out error). The
exponent b and the crossover compute between families get bootstrap 95% intervals (runs resampled
within each budget, everything refitted); a holdout check fits all but the largest budget and
predicts it. Compute C is the budget's analytic training FLOPs (train.max_flops, the bench count).

Writes scaling.json, scaling.md and scaling.png into SWEEP_DIR (or --output-dir); docs/scaling.md
explains every number.

  masked-mixers scaling runs/sweep-cpu
  masked-mixers scaling runs/sweep-cpu --output-dir docs/scaling-cpu --bootstrap 2000 --seed 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.options import add_output

SIZE_CHOICES = ("non_embedding_params", "params")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_dir", metavar="SWEEP_DIR", help="a sweep folder holding results.jsonl")
    add_output(parser, folder=True, help="where the three files go (default: SWEEP_DIR)")
    parser.add_argument(
        "--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for the 95%% intervals"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling")
    parser.add_argument(
        "--size",
        choices=SIZE_CHOICES,
        default="non_embedding_params",
        help="the row key used as model size N",
    )


def run(args: argparse.Namespace) -> int:
    from ..core.errors import UserError
    from ..core.files import check_output_dir
    from ..scaling import analyse, read_results, write_report

    if args.bootstrap < 0:
        raise UserError(f"--bootstrap {args.bootstrap}: must be 0 or more")
    output = Path(args.output_dir or args.sweep_dir)
    check_output_dir(output)
    rows = read_results(Path(args.sweep_dir) / "results.jsonl")
    analysis = analyse(rows, size=args.size, resamples=args.bootstrap, seed=args.seed)
    paths = write_report(output, analysis)
    for context in analysis["contexts"]:
        for name, fam in context["families"].items():
            ci = fam["exponent_ci"]
            interval = f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""
            exponent = f"b = {fam['exponent']:.3g}{interval}" if fam["exponent"] is not None else fam["status"]
            print(f"  L {context['seq_len']} {name}: {exponent}")
        print(f"  {context['summary']}")
    print(f"scaling: report -> {paths[1]}")
    return 0
