"""Run lm-evaluation-harness tasks on a trained model (masked mixer, Llama or any causal family).

Loglikelihood tasks (multiple choice), rolling loglikelihood (perplexity: documents longer than the
model's length L are scored in windows of L tokens) and generate_until tasks all work; prompts
for generation are laid out the way the model was trained (masked_mixers/generation/harness.py says how).
Tasks are lm-eval's own (`lm-eval ls tasks`; most read their data from the Hugging Face hub) or
YAML tasks of your own in --include-path folders, e.g. over a local .jsonl:

  task: my_stories_ppl
  dataset_path: json
  dataset_kwargs: {data_files: {test: stories.jsonl}}
  test_split: test
  output_type: loglikelihood_rolling
  doc_to_text: ""
  doc_to_target: "{{text}}"
  metric_list: [{metric: word_perplexity}, {metric: byte_perplexity}, {metric: bits_per_byte}]

Needs the `lm-eval` extra: pip install "masked-mixers[lm-eval]".

Examples:
  masked-mixers lm-eval runs/mixer --tasks lambada_openai hellaswag --limit 200
  masked-mixers lm-eval runs/mixer --tasks my_stories_ppl --include-path tasks/ --no-builtin-tasks --output lm-eval.json
"""

from __future__ import annotations

import argparse

from ..core.configfile import check_seed_option
from ..core.errors import UserError
from ..core.options import add_device, add_output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model_dir", metavar="RUN_DIR", help="directory with the model and its tokenizer (a training run's output_dir)"
    )
    parser.add_argument(
        "--tasks", nargs="+", required=True, metavar="TASK", help="lm-eval task or group names (glob patterns work)"
    )
    parser.add_argument(
        "--include-path",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of task YAML files to add (repeatable)",
    )
    parser.add_argument(
        "--no-builtin-tasks",
        action="store_true",
        help="index only --include-path tasks, not lm-eval's thousands (a faster start)",
    )
    parser.add_argument(
        "--num-fewshot", type=int, default=None, help="few-shot examples per prompt (default: each task's own)"
    )
    parser.add_argument(
        "--limit",
        type=float,
        default=None,
        help="documents per task: a count, or a fraction if below 1 (for quick checks)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="requests scored or generated together")
    parser.add_argument("--seed", type=int, default=0, help="seeds few-shot sampling and any sampled generation")
    add_output(
        parser, folder=False, help="also write lm-eval's results (metrics, task configs, versions) to this JSON file"
    )
    add_device(parser)


def run(args: argparse.Namespace) -> int:
    check_seed_option(args.seed)
    try:
        from lm_eval.utils import handle_non_serializable, make_table

        from ..generation.harness import evaluate_run
    except ImportError as err:
        raise UserError(
            f'lm-eval is not installed ({err.name} is missing): pip install "masked-mixers[lm-eval]"'
        ) from None
    from ..core.files import atomic_write_json

    results = evaluate_run(
        args.model_dir,
        args.tasks,
        include_path=args.include_path,
        builtin_tasks=not args.no_builtin_tasks,
        num_fewshot=args.num_fewshot,
        limit=args.limit,
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
    )
    print(make_table(results))
    if args.output:
        atomic_write_json(args.output, results, default=handle_non_serializable)
        print(f"wrote {args.output}")
    return 0
