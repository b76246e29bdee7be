"""Architecture flexibility (Badger, arXiv 2409.01482): train without layer norms, residuals or feed-forward.

For each family (mixer, llama) the run config's model is trained unablated and with one part
removed at a time (and, for llama, with its feed-forward replaced by attention:
`feed_forward_attention`), every variant for the same budget (the config's train section) on the same
prepared data. A run diverged at its first logged training loss that is NaN/inf (training stops
there and the sweep goes on to the next variant) or above --divergence-factor (3) times ln(vocab),
the loss of a uniform guess (masked_mixers/training/divergence.py); the table reports that step, or else
the final loss. Llama variants are
built from transformers' own Llama modules (family "llama_ablated").

Gradient clipping is the config's train.max_grad_norm (1.0 by default, as the paper's HF
Trainer); --no-clip turns it off for every variant, since clipping can hide the divergence the
paper describes. The table's max_grad_norm column says which.

Writes into --output-dir: one training directory per variant, ablation.md, ablation.json, ablation.png.

  masked-mixers ablate configs/small.yaml --set train.max_steps=300 --output-dir runs/ablate
  masked-mixers ablate configs/small.yaml --families llama --ablations none feed_forward_attention --no-clip
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from ..core.options import add_output, add_overrides
from ..probes.ablation import ABLATABLE_FAMILIES, ABLATIONS
from ..training.divergence import DIVERGENCE_FACTOR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="run config YAML: model sizes, data and the training budget every variant gets")
    parser.add_argument(
        "--families",
        nargs="+",
        default=list(ABLATABLE_FAMILIES),
        choices=list(ABLATABLE_FAMILIES),
        help="families to ablate",
    )
    parser.add_argument(
        "--ablations",
        nargs="+",
        default=list(ABLATIONS),
        choices=list(ABLATIONS),
        help="parts to remove, one variant each",
    )
    parser.add_argument(
        "--divergence-factor",
        type=float,
        default=DIVERGENCE_FACTOR,
        help="diverged: a logged loss NaN/inf or above this times ln(vocab) (default: %(default)s)",
    )
    parser.add_argument(
        "--no-clip",
        dest="clip",
        action="store_false",
        help="train every variant without gradient clipping (train.max_grad_norm 0)",
    )
    add_overrides(parser, help="override a config key")
    add_output(
        parser,
        folder=True,
        dest="out",
        old=("--out",),
        default="runs/ablate",
        help="where the variants, ablation.md/.json/.png go",
    )


def run(args: argparse.Namespace) -> int:
    from ..probes.ablate_runner import AblateRequest, run_ablation

    run_ablation(AblateRequest(**{f.name: getattr(args, f.name) for f in fields(AblateRequest)}))
    return 0
