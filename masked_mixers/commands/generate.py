"""Generate text from a trained model directory (masked mixer or Llama) and stream it to stdout.

MODEL_DIR holds the model and its tokenizer, as `masked-mixers train` writes them (any directory
that AutoModelForCausalLM and AutoTokenizer load works). Sampling is the default (temperature 1,
no top-k/top-p filter); --greedy picks the most likely token. A masked mixer decodes with its
cache unless --no-cache, and slides its window past seq_len (keeps the last seq_len/2 tokens).
With several --prompt options they run as one batch, padded on the side the tokenizer (and so
the training data) uses, and print one after another.

A model trained with multi-token prediction heads (train.objective: mtp, mtp_mode: heads) can
decode greedily with --speculative: its extra heads draft tokens that the main head verifies, so
the text is exactly the greedy text in fewer forward passes. A model trained with
train.objective: completion writes L/2 tokens after the prompt in one forward pass with --one-step.
A masked mixer decodes one prompt greedily with --greedy --compile through one fixed-shape decoding
step compiled by torch.compile (generation/compiled.py): the same text as --greedy, the fastest
batch-1 path (docs/benchmarks.md), after a first step that compiles (seconds to a minute on a CPU).

Examples:
  masked-mixers generate runs/mixer --prompt "once upon a time" --max-new-tokens 100 --seed 0
  masked-mixers generate runs/mixer-mtp-heads --prompt "once upon a time" --max-new-tokens 60 --speculative
  masked-mixers generate runs/mixer-completion --prompt "once upon a time there was" --one-step
  masked-mixers generate runs/mixer --prompt "once upon a time" --max-new-tokens 100 --greedy --compile
"""

from __future__ import annotations

import argparse

from ..core.options import add_device, add_trust_remote_code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="directory with the model and its tokenizer")
    parser.add_argument("--prompt", action="append", required=True, help="text to continue (repeat for a batch)")
    parser.add_argument(
        "--max-new-tokens", type=int, default=100, help="tokens to generate per prompt (fewer if EOS comes first)"
    )
    parser.add_argument(
        "--temperature", type=float, default=1.0, help="sampling temperature (> 0); ignored with --greedy"
    )
    parser.add_argument("--top-k", type=int, default=0, help="sample from the k most likely tokens (0: all)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1: off)")
    parser.add_argument(
        "--repetition-penalty",
        type=float,
        default=1.0,
        help="divide the logits of tokens already in the text by this (1: off)",
    )
    parser.add_argument("--seed", type=int, default=None, help="makes sampling reproducible")
    parser.add_argument("--greedy", action="store_true", help="always take the most likely token")
    parser.add_argument("--no-cache", action="store_true", help="recompute the whole window for every token")
    parser.add_argument(
        "--padding-side",
        choices=("left", "right"),
        help="override the tokenizer's padding side (default: the one the model was trained with)",
    )
    parser.add_argument(
        "--speculative",
        action="store_true",
        help="greedy decoding drafted by the model's MTP heads (same text, fewer passes)",
    )
    parser.add_argument(
        "--one-step", action="store_true", help="a completion-trained model writes L/2 tokens in one forward pass"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="with --greedy, one prompt, a masked mixer: decode through the torch.compile'd fixed-shape step "
        "(prompt + new tokens <= seq_len)",
    )
    add_device(parser)
    add_trust_remote_code(parser)


def run(args: argparse.Namespace) -> int:
    from transformers import TextStreamer

    from ..core.configfile import check_seed_option
    from ..core.devices import resolve_device
    from ..generation import generate_text, sampling_kwargs
    from ..runs.rundir import load_run

    # sampling values checked before the model loads: a NaN temperature costs nothing
    check_seed_option(args.seed)
    _check_compile_options(args)
    sampling_kwargs(args.greedy, args.temperature, args.top_k, args.top_p, args.repetition_penalty)
    model, tokenizer = load_run(args.model_dir, trust_remote_code=args.trust_remote_code)
    model.to(resolve_device(args.device))
    if args.speculative or args.one_step:
        return _objective_run(model, tokenizer, args)
    if args.compile:
        return _compiled_run(model, tokenizer, args)
    options = dict(
        seed=args.seed,
        use_cache=not args.no_cache,
        padding_side=args.padding_side,
        greedy=args.greedy,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
    )
    if len(args.prompt) == 1:  # stream token by token
        print(args.prompt[0], end="", flush=True)
        streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        generate_text(model, tokenizer, args.prompt, args.max_new_tokens, streamer=streamer, **options)
        return 0
    for prompt, text in zip(args.prompt, generate_text(model, tokenizer, args.prompt, args.max_new_tokens, **options)):
        print(prompt + text, end="\n\n", flush=True)
    return 0


def _objective_run(model, tokenizer, args: argparse.Namespace) -> int:
    """--speculative (greedy by construction) or --one-step (the argmax of one pass): no sampling options."""
    from ..core.errors import UserError
    from ..generation import one_step_text, speculative_text

    if args.speculative and args.one_step:
        raise UserError("--speculative and --one-step: choose one")
    if args.speculative:
        texts = speculative_text(model, tokenizer, args.prompt, args.max_new_tokens)
    else:
        texts = one_step_text(model, tokenizer, args.prompt)
    for prompt, text in zip(args.prompt, texts):
        print(prompt + text, end="\n\n", flush=True)
    return 0


def _check_compile_options(args: argparse.Namespace) -> None:
    """--compile decodes one prompt greedily with the cache: any option it would ignore is refused in one line."""
    from ..core.errors import UserError

    if not args.compile:
        return
    clashes = [
        flag
        for flag, clash in (
            ("--no-cache", args.no_cache),
            ("--speculative", args.speculative),
            ("--one-step", args.one_step),
            ("--repetition-penalty", args.repetition_penalty != 1.0),
        )
        if clash
    ]
    if not args.greedy or clashes or len(args.prompt) != 1:
        why = "; ".join(
            ([] if args.greedy else ["add --greedy"])
            + [f"drop {flag}" for flag in clashes]
            + ([] if len(args.prompt) == 1 else [f"give one --prompt (got {len(args.prompt)})"])
        )
        raise UserError(f"--compile decodes one prompt greedily: {why}")


def _compiled_run(model, tokenizer, args: argparse.Namespace) -> int:
    """One prompt, greedy, through generation/compiled.py's compiled step, streamed as generate() streams."""
    import torch
    from transformers import TextStreamer

    from ..generation import encode_prompt
    from ..generation.compiled import check_static_request, static_greedy_generate

    ids = torch.tensor([encode_prompt(tokenizer, args.prompt[0])])  # (1, t): unpadded, as the compiled step needs
    check_static_request(model, ids, args.max_new_tokens, "compile")  # before anything is printed
    print(args.prompt[0], end="", flush=True)
    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    static_greedy_generate(
        model, ids, args.max_new_tokens, mode="compile", eos_token_id=tokenizer.eos_token_id, streamer=streamer
    )
    return 0
