"""Cached-decoding step time of masked mixers from several checkouts, side by side.

On a shared machine, timings of separate runs swing by 10-30% with other jobs' load, more than
the differences between two versions of the decoding step. This script starts one worker process
per checkout (each imports masked_mixers from its own tree), builds the `bench generate` model in
each (d 256, L 512, vocab 4096, random weights, seed 0; --layers), prefills the same 256-token
prompt, then lets the workers take turns: CHUNK decoding steps each, the order flipped every chunk,
128 steps per round. Each step is `model(input_ids=token, cache=cache, logits_to_keep=1)` plus the
argmax, timed in wall time and in the thread's CPU time (one torch thread: CPU time does not count
the time other processes hold the core). Reported: medians over all steps, and ratios to the first
checkout. With --generate N each turn is instead one whole generate() run of N tokens from the
prompt, timed between streamed tokens as `bench generate` does (coarser turns: noisier).
`masked-mixers bench generate` remains the official measurement.

  OMP_NUM_THREADS=1 python3 scripts/compare_decoding.py old=/path/to/old/checkout,new=. \
      --rounds 5 --chunk 8 flat:1 multihead:1 flat:8 multihead:8
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def worker(tree: str, layers: int) -> None:
    """Serve "reset MIXER BATCH" (prefill) and "steps K" (decode K steps, print their times) on stdin."""
    sys.path.insert(0, os.path.abspath(tree))
    import torch

    torch.set_num_threads(1)
    import masked_mixers
    from masked_mixers.runs.config import ModelSpec
    from masked_mixers.runs.factory import build_model

    assert masked_mixers.__file__.startswith(os.path.abspath(tree)), masked_mixers.__file__  # this checkout's code
    models, state = {}, {}
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.split()
        with torch.inference_mode():
            if command[0] == "reset":
                mixer_type, batch = command[1], int(command[2])
                if mixer_type not in models:
                    torch.manual_seed(0)
                    spec = ModelSpec(
                        family="mixer",
                        mixer_type=mixer_type,
                        vocab_size=4096,
                        hidden_size=256,
                        num_hidden_layers=layers,
                        seq_len=512,
                        num_heads=4,
                    )
                    models[mixer_type] = build_model(spec)[0].eval()
                ids = torch.randint(1, 4096, (batch, 256), generator=torch.Generator().manual_seed(0))
                out = models[mixer_type](input_ids=ids, use_cache=True)
                state.update(model=models[mixer_type], cache=out.cache, token=out.logits[:, -1:].argmax(-1), prompt=ids)
                print("ok", flush=True)
                continue
            wall, cpu = [], []
            if command[0] == "generate":  # one generate() run from the prompt; times between streamed tokens
                stamps = []
                streamer = type(
                    "Clock",
                    (),
                    {
                        "put": lambda self, v, stamps=stamps: stamps.append((time.perf_counter(), time.thread_time())),
                        "end": lambda self: None,
                    },
                )()
                ids = state["prompt"]
                state["model"].generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=int(command[1]),
                    min_new_tokens=int(command[1]),
                    do_sample=False,
                    use_cache=True,
                    streamer=streamer,
                    pad_token_id=0,
                    eos_token_id=None,
                )
                steps = list(zip(stamps[1:], stamps[2:]))  # after the prompt and the first token, as bench generate
                print(
                    json.dumps(
                        {
                            "wall": [1e3 * (b[0] - a[0]) for a, b in steps],
                            "cpu": [1e3 * (b[1] - a[1]) for a, b in steps],
                        }
                    ),
                    flush=True,
                )
                continue
            for _ in range(int(command[1])):
                w, c = time.perf_counter(), time.thread_time()
                state["token"] = (
                    state["model"](input_ids=state["token"], cache=state["cache"], logits_to_keep=1)
                    .logits[:, -1:]
                    .argmax(-1)
                )
                wall.append(1e3 * (time.perf_counter() - w))
                cpu.append(1e3 * (time.thread_time() - c))
            print(json.dumps({"wall": wall, "cpu": cpu}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", help="name=CHECKOUT,name=CHECKOUT,... (ratios are to the first)")
    parser.add_argument("configs", nargs="+", help="MIXER_TYPE:BATCH, e.g. flat:1 multihead:8")
    parser.add_argument(
        "--rounds", type=int, default=5, help="timed rounds of 128 steps (one more, first, is a warm-up)"
    )
    parser.add_argument("--chunk", type=int, default=8, help="steps a worker takes per turn")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument(
        "--generate", type=int, metavar="N", help="time whole generate() runs of N new tokens instead, one run per turn"
    )
    args = parser.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH="")
    workers = {}
    for name, tree in (item.split("=", 1) for item in args.trees.split(",")):
        command = [sys.executable, __file__, "--worker", tree, str(args.layers)]
        workers[name] = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert workers[name].stdout.readline().strip() == "ready", name

    def ask(name: str, command: str) -> str:
        workers[name].stdin.write(command + "\n")
        workers[name].stdin.flush()
        return workers[name].stdout.readline()

    turns = (
        f"one generate() of {args.generate} tokens per turn" if args.generate else f"128 steps in turns of {args.chunk}"
    )
    print(f"1 thread, {args.layers} layers, {args.rounds} rounds, {turns}", flush=True)
    for config in args.configs:
        mixer_type, batch = config.split(":")
        times = {name: {"wall": [], "cpu": []} for name in workers}
        for round_ in range(args.rounds + 1):
            for name in workers:
                assert ask(name, f"reset {mixer_type} {batch}").strip() == "ok"
            turns, command = (
                (1, f"generate {args.generate}") if args.generate else (128 // args.chunk, f"steps {args.chunk}")
            )
            for turn in range(turns):
                names = list(workers) if (round_ + turn) % 2 == 0 else list(workers)[::-1]
                for name in names:
                    out = json.loads(ask(name, command))
                    for key in out if round_ else ():
                        times[name][key] += out[key]
        for key in ("cpu", "wall"):
            base = statistics.median(times[next(iter(workers))][key])
            cells = [
                f"{name} {statistics.median(t[key]):.3f} ms ({statistics.median(t[key]) / base:.3f}x)"
                for name, t in times.items()
            ]
            print(f"{mixer_type} batch {batch}, {key} ms/step: " + "  ".join(cells), flush=True)
    for process in workers.values():
        process.stdin.close()
        process.wait()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]))
    else:
        main()
