"""lm-evaluation-harness on a masked mixer: loglikelihood, rolling loglikelihood past L and generate_until,
each checked against the model's own forward passes, then `masked-mixers lm-eval` on local YAML tasks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("lm_eval")
from lm_eval.api.instance import Instance  # noqa: E402
from tinyrun import make_run, stories  # noqa: E402

from masked_mixers.cli import main  # noqa: E402
from masked_mixers.generation import generate_text  # noqa: E402
from masked_mixers.generation.harness import MaskedMixersLM  # noqa: E402

L = 24


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("harness") / "run", seq_len=L)


@pytest.fixture(scope="module")
def lm(run_dir) -> MaskedMixersLM:
    return MaskedMixersLM(str(run_dir), device="cpu", batch_size=4)


def _instances(kind: str, arguments: list[tuple]) -> list[Instance]:
    return [Instance(kind, {}, args, i) for i, args in enumerate(arguments)]


def _log_probs(model, ids: list[int]) -> torch.Tensor:
    """(t, vocab) log-probabilities of the next token after each of `ids` (t <= L), one sequence alone."""
    assert len(ids) <= L
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].log_softmax(-1)


def test_the_model_length_is_l(lm):
    assert lm.max_length == L and lm.max_gen_toks == L // 2


def test_loglikelihood_is_the_sum_of_continuation_log_probs(lm):
    pairs = [
        ("once upon a time", " there was a dog"),
        ("the dog", " ran"),
        ("lily and tom went to the park", " to play"),
        ("", "lily"),
    ]
    got = lm.loglikelihood(_instances("loglikelihood", pairs))
    alone = MaskedMixersLM(pretrained=None, model=lm.model, tokenizer=lm.tokenizer, batch_size=1).loglikelihood(
        _instances("loglikelihood", pairs)
    )
    encode = lm.tokenizer
    for (context, continuation), (score, greedy), (score_alone, _) in zip(pairs, got, alone):
        if context:
            context_ids = encode(context)["input_ids"]
            whole = encode(context + continuation)["input_ids"]
        else:  # an empty context is the end-of-text token
            context_ids = [lm.tokenizer.eos_token_id]
            whole = context_ids + encode(continuation)["input_ids"]
        targets = whole[len(context_ids) :]
        log_probs = _log_probs(lm.model, whole[:-1])
        expected = sum(float(log_probs[len(context_ids) - 1 + i, t]) for i, t in enumerate(targets))
        assert score == pytest.approx(expected, abs=1e-4)
        assert score == pytest.approx(score_alone, abs=1e-4)  # batched with longer texts: the same score
        argmax = [int(log_probs[len(context_ids) - 1 + i].argmax()) for i in range(len(targets))]
        assert greedy == (argmax == targets)


def test_rolling_loglikelihood_scores_long_documents_in_windows_of_l(lm):
    docs = [" ".join(stories(2, skip=10))[:300], stories(1, skip=20)[0][:25]]
    ids = [lm.tokenizer(d)["input_ids"] for d in docs]
    assert len(ids[0]) > 3 * L and len(ids[1]) < L
    widths = []
    hook = lm.model.register_forward_pre_hook(
        lambda module, args, kwargs: widths.append((args[0] if args else kwargs["input_ids"]).shape[1]),
        with_kwargs=True,
    )
    try:
        got = lm.loglikelihood_rolling(_instances("loglikelihood_rolling", [(d,) for d in docs]))
    finally:
        hook.remove()
    assert max(widths) <= L
    for tokens, score in zip(ids, got):
        # by hand: every token predicted exactly once; the first window starts from end-of-text,
        # each later one predicts up to L new tokens from the L tokens before its last target
        first = [lm.tokenizer.eos_token_id] + tokens[: L - 1]
        expected = sum(float(_log_probs(lm.model, first)[i, t]) for i, t in enumerate(tokens[:L]))
        done = L
        while done < len(tokens):
            end = min(done + L, len(tokens))
            start = end - L - 1
            log_probs = _log_probs(lm.model, tokens[start : end - 1])
            expected += sum(float(log_probs[j - start - 1, tokens[j]]) for j in range(done, end))
            done = end
        assert score == pytest.approx(expected, abs=1e-3)


def test_generate_until_is_the_package_generation_batched_or_not(lm):
    prompts = ["once upon a time", "the dog", "lily and tom went", "a"]
    until = {"until": ["\n", "."], "max_gen_toks": 8, "do_sample": False}
    got = lm.generate_until(_instances("generate_until", [(p, dict(until)) for p in prompts]))
    for prompt, text in zip(prompts, got):
        expected = generate_text(
            lm.model, lm.tokenizer, [prompt], 8, greedy=True, stop_strings=["\n", ".", lm.tokenizer.eos_token]
        )[0]
        assert text == expected, prompt


def _write_tasks(folder: Path) -> dict:
    """Three local YAML tasks over .jsonl files (no hub): rolling perplexity, multiple choice, generation."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = stories(4, skip=40)
    (folder / "docs.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    choice = [
        {"context": d[:30], "choices": [d[30:50], docs[(i + 1) % 4][30:50]], "label": 0} for i, d in enumerate(docs)
    ]
    (folder / "choice.jsonl").write_text("".join(json.dumps(c) + "\n" for c in choice))
    (folder / "gen.jsonl").write_text("".join(json.dumps({"context": d[:25], "answer": d[25:40]}) + "\n" for d in docs))
    common = "dataset_path: json\ntest_split: test\nmetadata: {version: 1.0}\n"
    (folder / "ppl.yaml").write_text(
        f"task: mm_ppl\n{common}dataset_kwargs: {{data_files: {{test: {folder / 'docs.jsonl'}}}}}\n"
        "output_type: loglikelihood_rolling\n"
        'doc_to_text: ""\ndoc_to_target: text\n'
        "metric_list: [{metric: word_perplexity}, {metric: byte_perplexity}, {metric: bits_per_byte}]\n"
    )
    (folder / "choice.yaml").write_text(
        f"task: mm_choice\n{common}dataset_kwargs: {{data_files: {{test: {folder / 'choice.jsonl'}}}}}\n"
        "output_type: multiple_choice\n"
        "doc_to_text: context\ndoc_to_choice: choices\ndoc_to_target: label\nmetric_list: [{metric: acc}]\n"
    )
    (folder / "gen.yaml").write_text(
        f"task: mm_gen\n{common}dataset_kwargs: {{data_files: {{test: {folder / 'gen.jsonl'}}}}}\n"
        "output_type: generate_until\n"
        "doc_to_text: context\ndoc_to_target: answer\n"
        'generation_kwargs: {until: ["\\n"], max_gen_toks: 6, do_sample: false}\n'
        "metric_list: [{metric: exact_match}]\n"
    )
    return {"docs": docs}


def test_cli_runs_local_yaml_tasks_of_every_kind(lm, run_dir, tmp_path, capsys):
    written = _write_tasks(tmp_path / "tasks")
    out = tmp_path / "lm-eval.json"
    argv = [
        "lm-eval",
        str(run_dir),
        "--tasks",
        "mm_ppl",
        "mm_choice",
        "mm_gen",
        "--include-path",
        str(tmp_path / "tasks"),
        "--no-builtin-tasks",
        "--device",
        "cpu",
        "--batch-size",
        "3",
        "--output",
        str(out),
    ]
    assert main(argv) == 0
    assert "mm_ppl" in capsys.readouterr().out
    results = json.loads(out.read_text())["results"]
    # bits per byte from the rolling scores checked above: -(sum of log-likelihoods) / (bytes * ln 2)
    scores = lm.loglikelihood_rolling(_instances("loglikelihood_rolling", [(d,) for d in written["docs"]]))
    total_bytes = sum(len(d.encode("utf-8")) for d in written["docs"])
    assert results["mm_ppl"]["bits_per_byte,none"] == pytest.approx(-sum(scores) / total_bytes / math.log(2), rel=1e-6)
    assert 0 <= results["mm_choice"]["acc,none"] <= 1
    assert 0 <= results["mm_gen"]["exact_match,none"] <= 1


def test_cli_unknown_task_is_one_line(run_dir, tmp_path, capsys):
    (tmp_path / "tasks").mkdir()
    argv = [
        "lm-eval",
        str(run_dir),
        "--tasks",
        "no_such_task",
        "--include-path",
        str(tmp_path / "tasks"),
        "--no-builtin-tasks",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "no_such_task" in err and len(err.splitlines()) == 1
