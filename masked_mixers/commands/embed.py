"""Embed texts with a trained language model: its last hidden state at one position, as safetensors.

MODEL_DIR is a directory written by save_pretrained (a masked mixer or a Llama), its tokenizer
beside it. With --pairs FILE.jsonl the output holds tensors "queries" and "passages"; with
--corpus SOURCE it holds "documents". Positions: second-to-last (the paper's choice: the last
real token's output is never trained), last-token (last non-pad token), last (last position of
the fixed-length window).

Example:
  masked-mixers embed runs/mixer --pairs pairs/stories/test.jsonl --output emb/mixer-test.safetensors
"""

from __future__ import annotations

import argparse

from ..core.devices import check_device
from ..core.files import check_output_file
from ..core.options import add_device, add_output, add_trust_remote_code
from ..retrieval.settings import EMBED_FIELDS, add_options, from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="directory with the model and its tokenizer")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pairs", help="a .jsonl of query/passage pairs")
    source.add_argument("--corpus", help="a corpus file or hub id (text field --text-field)")
    add_output(parser, folder=False, dest="out", old=("--out",), required=True, help="output .safetensors file")
    add_options(parser, EMBED_FIELDS)  # --position, --batch-size, --max-length (retrieval/settings.py)
    parser.add_argument("--text-field", default="text", help="--corpus: text field of .jsonl/.parquet/hub records")
    parser.add_argument("--split", default="train", help="--corpus: hub split to read")
    parser.add_argument("--max-documents", type=int, default=None, help="--corpus: embed only the first N documents")
    add_device(parser)
    add_trust_remote_code(parser)


def run(args: argparse.Namespace) -> int:
    from ..core.devices import resolve_device
    from ..retrieval.corpus import load_documents
    from ..retrieval.embedding import embed_texts, load_language_model, save_embeddings
    from ..retrieval.pairs import read_pairs

    from_args(args, EMBED_FIELDS)  # --batch-size, --max-length in range
    check_output_file(args.out)
    check_device(args.device)
    if args.pairs:  # inputs read before the model loads: a bad pair file costs nothing
        pairs = read_pairs(args.pairs)
        texts = {"queries": [p.query for p in pairs], "passages": [p.passage for p in pairs]}
    else:
        texts = {
            "documents": load_documents(
                args.corpus, split=args.split, text_field=args.text_field, max_documents=args.max_documents
            )
        }
    model, tokenizer = load_language_model(
        args.model_dir, str(resolve_device(args.device)), trust_remote_code=args.trust_remote_code
    )
    tensors = {
        name: embed_texts(
            model, tokenizer, items, args.position, args.batch_size, args.max_length, desc=f"embed {name}"
        )
        for name, items in texts.items()
    }
    save_embeddings(
        args.out, tensors, {"model_dir": args.model_dir, "position": args.position, "source": args.pairs or args.corpus}
    )
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in tensors.items())
    print(f"wrote {args.out}: {shapes}")
    return 0
