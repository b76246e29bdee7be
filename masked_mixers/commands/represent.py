r"""Input representation accuracy (Badger, arXiv 2409.01482): how much of its input a model keeps.

For real inputs, the hidden state after a block is the target; starting from random embeddings,
gradient descent on the input alone (model frozen) reproduces it, and the recovered embeddings
are decoded to tokens. The modified Hamming metric is the fraction of real positions whose true
token is not among the top k decoded tokens: 0 = the block kept its whole input, 1 = nothing.

MODEL is any of
  runs/x.yaml          an untrained model of the run config's model section (--set overrides apply)
  runs/x/              a saved model directory (trained)
  untrained:runs/x/    the directory's architecture with fresh weights

Inputs come from --data RUN.yaml (its prepared eval split), --text SOURCE (a corpus file or hub
id, tokenized with --tokenizer or the first model directory's tokenizer), or --ids FILE (a JSON
list of token-id lists). Writes represent.json, represent.md and represent.png into --output-dir.

--protocol paper (the default) is the paper's procedure exactly (findings.md F1: N(0, 1) start,
L1 summed over every element, plain gradient descent with lr 0.02 falling linearly to 0.002, 500
steps, top-5 of x @ pinv(E) averaged per sequence); --protocol adam is an optimizer-robust
variant (Adam, cosine, mean L1 over real tokens, start at the embedding's scale). `--protocol
paper adam` reports both, one column each. The target of every block is taken before any final
norm. Any of --steps/--lr/... changes the protocol into a variant, labelled so in the report.

  masked-mixers represent mixer.yaml llama.yaml --text stories.jsonl --tokenizer tok.json \
      --blocks 1 2 --protocol paper adam
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from ..core.options import add_device, add_output, add_overrides, add_trust_remote_code
from ..probes.representation import DECODERS, LOSSES, OPTIMIZERS, PROTOCOLS, SCHEDULES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL", help="run config YAML, model directory, or untrained:DIR")
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--data", metavar="RUN.yaml", help="take inputs from this run config's prepared eval split")
    inputs.add_argument("--text", metavar="SOURCE", help="corpus file or hub dataset id to take inputs from")
    inputs.add_argument("--ids", metavar="FILE", help="JSON list of token-id lists")
    parser.add_argument("--tokenizer", help="tokenizer for --text (default: the first model directory's)")
    parser.add_argument("--split", default="validation", help="split of a hub --text corpus")
    parser.add_argument("--text-field", default="text", help="text field of .jsonl/.parquet/hub records")
    parser.add_argument("--lowercase", action="store_true", help="lowercase --text before tokenizing")
    parser.add_argument("--num-texts", type=int, default=16, help="how many input sequences")
    parser.add_argument("--seq-len", type=int, help="tokens per input (default: the shortest model length)")
    parser.add_argument(
        "--blocks", type=int, nargs="+", help="probe after these blocks, 1 = first (default: each model's last)"
    )
    parser.add_argument(
        "--protocol",
        dest="protocols",
        nargs="+",
        choices=tuple(PROTOCOLS),
        default=["paper"],
        help="paper (default): the paper's plain gradient descent (findings.md F1); adam: an optimizer-robust variant. "
        "Several: one column each",
    )
    variant = "; setting it makes the protocol a named variant"
    parser.add_argument("--steps", type=int, help=f"default: the protocol's (500){variant}")
    parser.add_argument(
        "--lr",
        type=float,
        help=f"initial learning rate (paper 0.02 absolute; adam 0.1 in embedding-std units){variant}",
    )
    parser.add_argument(
        "--lr-end-fraction", type=float, help=f"a linear schedule ends at lr x this (paper 0.1){variant}"
    )
    parser.add_argument("--schedule", choices=SCHEDULES, help=f"paper linear, adam cosine{variant}")
    parser.add_argument(
        "--optimizer", choices=tuple(OPTIMIZERS), help=f"paper sgd (plain gradient descent), adam adam{variant}"
    )
    parser.add_argument("--loss", choices=LOSSES, help=f"default l1{variant}")
    parser.add_argument(
        "--decode",
        choices=DECODERS,
        help=f"pinv (default): pseudo-inverse of the embedding; nearest: nearest embedding{variant}",
    )
    parser.add_argument("--top-k", type=int, help=f"default 5{variant}")
    parser.add_argument("--batch-size", type=int, default=8, help="inputs inverted together")
    parser.add_argument("--seed", type=int, default=0, help="seeds the random start embeddings and untrained models")
    add_overrides(parser, help="override in every run config YAML")
    add_output(
        parser,
        folder=True,
        dest="out",
        old=("--out",),
        default="runs/represent",
        help="where represent.json and represent.png go",
    )
    add_device(parser, "the models and the inversion")
    add_trust_remote_code(parser)


def run(args: argparse.Namespace) -> int:
    from ..probes.represent_runner import RepresentRequest, run_represent

    run_represent(RepresentRequest(**{f.name: getattr(args, f.name) for f in fields(RepresentRequest)}))
    return 0
