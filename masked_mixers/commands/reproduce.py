r"""Run the paper's findings with the paper's protocols and write one scorecard.

Each FINDING of docs/findings.md (F1 representation, F2 flexibility, F3 autoencoders, F4 causal
LM efficiency, F5 retrieval, F6 bidirectional, F7 linear mixers; default: all) is measured at
--scale and judged against the paper's direction: agrees, disagrees or inconclusive (seeds
disagree, or the gap is within seed noise), with the reason. Writes scorecard.md, scorecard.json
and scorecard.png into --output-dir, rewritten after every finding, beside one folder per
finding holding the ordinary reports of its runs (compare, represent, ablate, retrieval).
Running again into the same folder reuses every finding and comparison already measured with
the same scale and data by the same code (package version and a sha256 of its source), so an
interrupted run resumes and a code change re-runs; --reuse-stale keeps findings measured by
other code instead, marked stale in the scorecard.

Scales: cpu (d_model 128, 4 blocks, L 128, 3 seeds; over 90 minutes on 2 CPU cores: docs/reproduce.md), paper
(the paper's sizes per finding, for a GPU), tiny (a test-only scale; its numbers mean nothing).

  masked-mixers reproduce --scale cpu --data train-lowercase.jsonl --eval-data valid-lowercase.jsonl \
      --output-dir runs/reproduce-cpu
  masked-mixers reproduce F1 F4 --scale paper --output-dir runs/reproduce-paper
"""

from __future__ import annotations

import argparse
import shlex
import sys

from ..core.options import add_device, add_no_progress, add_output, hide_progress

FINDING_IDS = ("F1", "F2", "F3", "F4", "F5", "F6", "F7")
SCALE_NAMES = ("cpu", "paper", "tiny")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "findings", nargs="*", metavar="FINDING", help=f"which findings ({', '.join(FINDING_IDS)}; default: all)"
    )
    parser.add_argument("--scale", default="cpu", help=f"model sizes and budgets: {', '.join(SCALE_NAMES)}")
    parser.add_argument(
        "--data", help="training corpus: local file or hub dataset id (default: roneneldan/TinyStories from the hub)"
    )
    parser.add_argument(
        "--eval-data",
        help="held-out corpus: local file or hub dataset id (default: the training corpus's validation split)",
    )
    add_output(parser, folder=True, help="where the scorecard and every run go (default: runs/reproduce-SCALE)")
    parser.add_argument("--cache-dir", help="where prepared data is cached (default: ~/.cache/masked_mixers)")
    parser.add_argument(
        "--reuse-stale",
        action="store_true",
        help="keep saved findings measured by other code (marked stale in the scorecard) instead of re-running them",
    )
    add_device(parser, "the probes (training uses the Trainer's device)")
    add_no_progress(parser)


def run(args: argparse.Namespace) -> int:
    hide_progress(args)
    from ..reproduce import ReproduceRequest, run_reproduce

    request = ReproduceRequest(
        findings=args.findings,
        scale=args.scale,
        output_dir=args.output_dir or f"runs/reproduce-{args.scale}",
        data=args.data,
        eval_data=args.eval_data,
        device=args.device,
        progress=not args.no_progress,
        cache_dir=args.cache_dir,
        reuse_stale=args.reuse_stale,
        command="masked-mixers " + shlex.join(sys.argv[1:]),
    )
    card = run_reproduce(request)
    for entry in card["findings"]:
        print(f"  {entry['id']} {entry['title']}: {entry['verdict']} ({entry['reason']})")
    print(f"reproduce: scorecard -> {request.output_dir}/scorecard.md")
    return 1 if any(entry.get("error") for entry in card["findings"]) else 0
