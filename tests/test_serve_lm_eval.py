"""lm-eval's `local-completions` model scoring through a real `masked-mixers serve` on 127.0.0.1 gets the same
log-likelihoods (and greedy flags) as `MaskedMixersLM`, the model `masked-mixers lm-eval` runs directly."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("lm_eval")
pytest.importorskip("tenacity")  # lm-eval's API models need its `api` extra
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.models.openai_completions import LocalCompletionsAPI  # noqa: E402
from serverproc import serve  # noqa: E402
from tinyrun import make_run  # noqa: E402

from masked_mixers.generation.harness import MaskedMixersLM  # noqa: E402

L = 24
PAIRS = [
    ("once upon a time", " there was a dog"),
    ("the dog", " ran"),
    ("lily and tom went to the park", " to play"),
    ("", "lily"),
]


def test_local_completions_through_the_server_scores_as_masked_mixers_lm(tmp_path):
    run_dir = make_run(tmp_path / "run", seq_len=L)
    instances = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(PAIRS)]
    direct = MaskedMixersLM(str(run_dir), device="cpu", batch_size=2).loglikelihood(instances)
    with serve(run_dir) as (base, _process):
        client = LocalCompletionsAPI(
            base_url=f"{base}/v1/completions",
            model="run",
            tokenizer_backend="huggingface",
            tokenizer=str(run_dir),
            max_length=L,  # contexts of at most L - 1 tokens, plus the one token the request generates
            batch_size=2,
        )
        served = client.loglikelihood(instances)
    assert len(served) == len(direct) == len(PAIRS)
    for (score, greedy), (expected, expected_greedy) in zip(served, direct):
        assert score == pytest.approx(expected, abs=1e-4) and greedy == expected_greedy
