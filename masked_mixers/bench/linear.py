"""Generation speed of a deep linear mixer against its collapsed one-layer equivalent.

Builds a randomly initialised fully linear mixer (generation speed does not depend on the
weights), collapses it, and times greedy generation side by side in one run, alternating the
models on each repeat:

  deep, cached      every layer keeps its mixing inputs; a new token costs one weighted sum per layer
  collapsed, cached one weighted sum over the cached embeddings per token, whatever the depth
  deep, no cache    the whole prefix through every layer for every new token

Prints the median tokens per second of each and checks that all three produce the same tokens.

  masked-mixers bench linear --hidden-size 256 --layers 8 --seq-len 512 --new-tokens 256
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ..core.devices import resolve_device
from ..core.errors import UserError
from ..core.options import add_device
from ..models import LinearMixerConfig, LinearMixerForCausalLM


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hidden-size", type=int, default=256, help="d_model")
    parser.add_argument("--layers", type=int, default=8, help="depth of the deep model")
    parser.add_argument("--seq-len", type=int, default=512, help="L, the mixing size")
    parser.add_argument("--vocab-size", type=int, default=4096, help="vocabulary of the random models")
    parser.add_argument("--batch-size", type=int, default=1, help="prompts decoded together")
    parser.add_argument("--prompt-tokens", type=int, default=16, help="random prompt length")
    parser.add_argument("--new-tokens", type=int, default=256, help="tokens generated per run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model (median reported)")
    add_device(parser, "the benchmark")


def timed_generate(model, prompt: torch.Tensor, new_tokens: int, use_cache: bool) -> tuple[float, torch.Tensor]:
    """(tokens per second, output ids) of one greedy generate() of exactly `new_tokens` (also F7 of `reproduce`)."""
    if prompt.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        use_cache=use_cache,
        pad_token_id=0,
    )
    if prompt.device.type == "cuda":
        torch.cuda.synchronize()
    return prompt.shape[0] * new_tokens / (time.perf_counter() - start), out


def run(args: argparse.Namespace) -> int:
    args.device = str(resolve_device(args.device))
    if args.prompt_tokens + args.new_tokens > args.seq_len:
        raise UserError(
            f"--prompt-tokens + --new-tokens ({args.prompt_tokens + args.new_tokens}) exceeds --seq-len {args.seq_len}"
        )
    config = LinearMixerConfig(
        vocab_size=args.vocab_size, hidden_size=args.hidden_size, num_hidden_layers=args.layers, seq_len=args.seq_len
    )
    torch.manual_seed(0)
    deep = LinearMixerForCausalLM(config).to(args.device).eval()
    collapsed = deep.collapse()
    prompt = torch.randint(0, args.vocab_size, (args.batch_size, args.prompt_tokens), device=args.device)
    contenders = {"deep, cached": (deep, True), "collapsed, cached": (collapsed, True), "deep, no cache": (deep, False)}
    speeds: dict[str, list[float]] = {name: [] for name in contenders}
    outputs = {}
    with torch.inference_mode():
        for _name, (model, use_cache) in contenders.items():  # warm-up
            timed_generate(model, prompt, min(8, args.new_tokens), use_cache)
        for _ in range(args.repeats):
            for name, (model, use_cache) in contenders.items():
                speed, outputs[name] = timed_generate(model, prompt, args.new_tokens, use_cache)
                speeds[name].append(speed)
    print(
        f"linear mixer d={args.hidden_size} layers={args.layers} L={args.seq_len} batch={args.batch_size} "
        f"prompt={args.prompt_tokens} new={args.new_tokens} device={args.device} repeats={args.repeats}"
    )
    base = statistics.median(speeds["deep, cached"])
    for name, values in speeds.items():
        median = statistics.median(values)
        print(f"  {name:18s} {median:10.1f} tokens/s  ({median / base:.2f}x deep cached)")
    same = all(torch.equal(out, outputs["deep, cached"]) for out in outputs.values())
    print(f"  same tokens from all three: {'yes' if same else 'NO'}")
    return 0 if same else 1
