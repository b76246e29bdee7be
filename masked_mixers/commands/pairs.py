"""Build (query, passage) pairs for retrieval and split them into train.jsonl and test.jsonl.

Kinds of pair (--kind):
  sentence   one sentence of each document -> the rest of the document (sentence removed)
  keywords   a few content words of each document -> the document with those words deleted
  file       a .jsonl of real pairs (--query-field, --passage-field name its fields)
  tinystories-instruct
             TinyStoriesInstruct's "Summary:" -> story, streamed from the hub (SOURCE is the
             dataset id, default roneneldan/TinyStoriesInstruct)

Examples:
  masked-mixers pairs data/stories.jsonl --output-dir pairs/stories --kind sentence --max-documents 5000
  masked-mixers pairs my_pairs.jsonl --kind file --query-field summary --passage-field story --output-dir pairs/mine
"""

from __future__ import annotations

import argparse

from ..core.errors import UserError
from ..core.files import check_output_dir
from ..core.options import add_output
from ..retrieval.corpus import load_documents
from ..retrieval.pairs import build_pairs, load_tinystories_instruct, read_pairs, save_splits, split_pairs
from ..retrieval.settings import PAIR_FIELDS, PAIR_KINDS, RetrievalSettings, add_options, from_args

# the built kinds of RetrievalSettings plus the two that read pairs instead of building them
KINDS = (*PAIR_KINDS, "file", "tinystories-instruct")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        nargs="?",
        default="roneneldan/TinyStoriesInstruct",
        help="corpus file or hub id, or a pair file for --kind file",
    )
    add_output(
        parser, folder=True, dest="out", old=("--out",), required=True, help="directory for train.jsonl and test.jsonl"
    )
    kind_help = RetrievalSettings.__dataclass_fields__["kind"].metadata["help"]
    parser.add_argument(
        "--kind",
        choices=KINDS,
        default=RetrievalSettings.kind,
        help=f"{kind_help}; file, tinystories-instruct: read pairs (see above)",
    )
    parser.add_argument(
        "--split", default=None, help="hub split to read (default: train; validation for tinystories-instruct)"
    )
    parser.add_argument("--text-field", default="text", help="text field of .jsonl/.parquet/hub records")
    parser.add_argument("--lowercase", action="store_true", help="lowercase the documents first")
    parser.add_argument("--max-documents", type=int, default=None, help="read at most this many documents (or pairs)")
    parser.add_argument("--query-field", default="query", help="--kind file: the query field of each record")
    parser.add_argument("--passage-field", default="passage", help="--kind file: the passage field of each record")
    add_options(parser, PAIR_FIELDS)  # --min-query-words, --num-keywords, --test-fraction, --max-test, --seed


def _pairs(args: argparse.Namespace):
    if args.kind == "file":
        pairs = read_pairs(args.source, args.query_field, args.passage_field)
        return pairs[: args.max_documents] if args.max_documents else pairs
    if args.kind == "tinystories-instruct":
        return load_tinystories_instruct(args.source, args.split or "validation", args.max_documents)
    documents = load_documents(
        args.source,
        split=args.split or "train",
        text_field=args.text_field,
        lowercase=args.lowercase,
        max_documents=args.max_documents,
    )
    return build_pairs(
        documents, args.kind, seed=args.seed, **from_args(args, PAIR_FIELDS, kind=args.kind).pair_options()
    )


def _too_short(args: argparse.Namespace) -> str:
    """What a document lacks when it gives no pair of `args.kind`."""
    if args.kind == "keywords":
        return f"keywords pairs need documents of at least {args.num_keywords + 5} distinct content words"
    if args.kind == "sentence":
        return f"sentence pairs need a sentence of at least {args.min_query_words} words and text besides it"
    return "the source holds none"


def run(args: argparse.Namespace) -> int:
    check_output_dir(args.out)
    if args.max_documents is not None and args.max_documents < 1:
        raise UserError(f"--max-documents must be at least 1, got {args.max_documents}")
    from_args(args, PAIR_FIELDS, kind=args.kind if args.kind in PAIR_KINDS else RetrievalSettings.kind)  # ranges
    pairs = _pairs(args)
    if not pairs:  # documents too short for the kind
        raise UserError(f"{args.source}: no {args.kind} pairs could be made from these documents ({_too_short(args)})")
    splits = split_pairs(pairs, args.test_fraction, args.seed, args.max_test)
    train_path, test_path = save_splits(args.out, splits)
    print(f"{len(pairs)} pairs ({args.kind}): {len(splits.train)} -> {train_path}, {len(splits.test)} -> {test_path}")
    return 0
