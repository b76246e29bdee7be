"""Publish a training run as a self-contained Hugging Face model, with a model card.

Examples:
  masked-mixers push runs/mixer me/tinystories-mixer --license mit  # the hub (HF_TOKEN or `hf auth login`)
  masked-mixers push runs/mixer file:///srv/models/tinystories-mixer   # a local folder
  masked-mixers push runs/mixer ./published/mixer

What is published: the model (config.json, weights, generation_config.json), the tokenizer (its padding
side and model_max_length = L), the model code with an auto_map (AutoConfig, AutoModel and the family's
own Auto class), and a README.md model card: titled by the repo id (a local target: its folder's name),
with a licence, a usage example, what the fixed context length L means, the family, size, data (local
files by name only), training budget and held-out metrics. Not published: Trainer checkpoints,
training_args.bin (a pickle), the lock file, run.yaml, metrics. Every family loads without this
package: the masked mixers and hybrids with AutoModelForCausalLM.from_pretrained(REPO_ID,
trust_remote_code=True) (and AutoModel for hidden states); llama and gpt2 are transformers' own
classes and need no code. A run saved by an older version without its code gets the current code.

A local target that is new, empty or an earlier push (it records what it holds in
.masked-mixers.json) is replaced as a whole; an existing folder holding anything else gets the model
in a new subfolder named after the run (like `cp -r`), never replaced. The run folder itself, a
folder inside a run, or a subfolder that is in the way is refused with one line.
"""

from __future__ import annotations

import argparse
import re

from ..runs.card import DEFAULT_LICENSE


def _license(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a hub licence id (e.g. mit, apache-2.0, cc-by-4.0, other)")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="output folder of a training run")
    parser.add_argument("repo_id", help="hub repo id (owner/name), or a local target: file://PATH, /abs, ./rel, ~/...")
    parser.add_argument("--private", action="store_true", help="create the hub repo private (default: public)")
    parser.add_argument("--token", default=None, help="hub token (default: HF_TOKEN or the saved login)")
    parser.add_argument(
        "--license",
        type=_license,
        default=DEFAULT_LICENSE,
        help="the card's licence, a hub licence id such as mit or apache-2.0 (default: %(default)s, which the card "
        "says means none was chosen; the training data's own terms may apply)",
    )


def run(args: argparse.Namespace) -> int:
    from ..runs.hub import push

    where = push(args.run_dir, args.repo_id, private=args.private, token=args.token, license=args.license)
    print(f"pushed {args.run_dir} -> {where}")
    return 0
