"""Self-speculative decoding of a trained MTP-heads model against greedy decoding (`bench generate --speculative DIR`).

Contenders, on the same model, prompts and number of new tokens, greedy, batch 1, EOS off:

- `speculative`: the extra heads draft, the main head verifies (objectives/speculative.py); each
  pass recomputes the text so far (no cache);
- `greedy-no-cache`: generate(use_cache=False), one pass over the text so far per token: the
  like-for-like baseline (both recompute);
- `greedy-cached`: generate() with the family's cache, where it has one: what a user gets by default.

The speculative output is checked against the greedy output token for token (they must agree,
or the benchmark fails). Reported: tokens/s (median over --repeats of all prompts' tokens over
their total time), forward passes per token, and the speed-up of speculative over each baseline.
Acceptance depends on how well the heads learned, so this needs a trained model, not random weights.
"""

from __future__ import annotations

import statistics
import time

import torch

from ..core.errors import UserError
from ..models import context_length, family_of
from ..objectives import can_speculate, speculative_greedy

PROMPTS = ("once upon a time, there was a", "the little dog wanted to", "one day, lily went to the", "tom and his mom")


@torch.inference_mode()
def _greedy(model, ids: list[int], new: int, use_cache: bool) -> list[int]:
    x = torch.tensor([ids])
    out = model.generate(
        x,
        attention_mask=torch.ones_like(x),
        max_new_tokens=new,
        min_new_tokens=new,
        do_sample=False,
        use_cache=use_cache,
        pad_token_id=0,
        eos_token_id=None,
    )
    return out[0, len(ids) :].tolist()


def measure_speculative(model, tokenizer, new_tokens: int, repeats: int, prompts=PROMPTS) -> dict:
    """{"rows": [...], "speedups": {...}, "passes_per_token": float} on `prompts`."""
    if not can_speculate(model):
        raise UserError(
            "bench generate --speculative: the model was not trained with train.objective: mtp, mtp_mode: heads"
        )
    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    if max(map(len, encoded)) + new_tokens > context_length(model):
        raise UserError(
            f"bench generate --speculative: prompt plus --new-tokens {new_tokens} "
            f"exceeds seq_len={context_length(model)}"
        )
    contenders = {
        "speculative": lambda ids: speculative_greedy(model, ids, new_tokens)[0],
        "greedy-no-cache": lambda ids: _greedy(model, ids, new_tokens, use_cache=False),
    }
    if family_of(model).capabilities.cached_generation:
        contenders["greedy-cached"] = lambda ids: _greedy(model, ids, new_tokens, use_cache=True)
    passes = sum(speculative_greedy(model, ids, new_tokens)[1]["passes"] for ids in encoded)
    for ids in encoded:  # warm-up, and the equality every speed-up rests on
        if contenders["speculative"](ids) != contenders["greedy-no-cache"](ids):
            raise AssertionError("speculative decoding differs from greedy decoding: a bug, not a speed result")
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            for ids in encoded:
                run(ids)
            times[name].append(time.perf_counter() - start)
    tokens = new_tokens * len(encoded)
    rows = [{"model": name, "tokens_per_s": tokens / statistics.median(t), "runs_s": t} for name, t in times.items()]
    speed = {r["model"]: r["tokens_per_s"] for r in rows}
    speedups = {f"speculative_vs_{name}": speed["speculative"] / speed[name] for name in speed if name != "speculative"}
    return {"rows": rows, "speedups": speedups, "passes_per_token": passes / tokens}


def table(result: dict) -> str:
    lines = ["| decoding | tokens/s |", "|---|---|"]
    lines += [f"| {r['model']} | {r['tokens_per_s']:.0f} |" for r in result["rows"]]
    lines += ["", f"forward passes per token (speculative): {result['passes_per_token']:.3f}"]
    lines += [f"{k}: {v:.2f}x" for k, v in result["speedups"].items()]
    return "\n".join(lines)


__all__ = ["PROMPTS", "measure_speculative", "table"]
