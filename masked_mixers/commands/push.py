"""Publish a training run as a self-contained Hugging Face model, with a model card.

Examples:
  masked-mixers push runs/mixer me/tinystories-mixer              # the Hugging Face hub (HF_TOKEN or `hf auth login`)
  masked-mixers push runs/mixer file:///srv/models/tinystories-mixer   # a local folder
  masked-mixers push runs/mixer ./published/mixer

What is published: the model (config.json with auto_map, weights, the modeling code beside them),
the tokenizer (its padding side and model_max_length = L), run.yaml, train_summary.json, and a
README.md model card recording the family, size, data, training budget and held-out metrics;
not the Trainer checkpoints. The result loads without this package:
AutoModelForCausalLM.from_pretrained(REPO_ID, trust_remote_code=True).

A local target that is new, empty or an earlier push (it records what it holds in
.masked-mixers.json) is replaced as a whole; an existing folder holding anything else gets the model
in a new subfolder named after the run (like `cp -r`), never replaced. The run folder itself, a
folder inside a run, or a subfolder that is in the way is refused with one line.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="output folder of a training run")
    parser.add_argument("repo_id", help="hub repo id (owner/name), or a local target: file://PATH, /abs, ./rel, ~/...")
    parser.add_argument("--private", action="store_true", help="create the hub repo private (default: public)")
    parser.add_argument("--token", default=None, help="hub token (default: HF_TOKEN or the saved login)")


def run(args: argparse.Namespace) -> int:
    from ..runs.hub import push

    where = push(args.run_dir, args.repo_id, private=args.private, token=args.token)
    print(f"pushed {args.run_dir} -> {where}")
    return 0
