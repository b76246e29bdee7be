"""compare with the retrieval task: held-out pairs, the report's tables and plot, results.json."""

import json
from pathlib import Path

import pytest
from conftest import TRAIN, VALID
from standin_data import prepare_standin

from masked_mixers.compare import run_compare
from masked_mixers.compare.config import load_compare_config
from masked_mixers.compare.retrieval import heldout_documents
from masked_mixers.core.errors import UserError
from masked_mixers.retrieval import read_pairs

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "compare-retrieval-tiny.yaml"


def _lines(path: Path, n: int | None = None) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["text"].lower() for _, line in zip(range(n) if n else iter(int, 1), handle)]


def test_compare_with_retrieval_writes_tables_plot_and_results(tmp_path):
    config = load_compare_config(TINY)
    config.data.source, config.data.eval_source = str(TRAIN), str(VALID)
    run_compare(
        config, tmp_path, prepare=lambda data, L: prepare_standin(data, L, n_train=64, n_eval=16), progress=False
    )

    results = json.loads((tmp_path / "results.json").read_text())
    retrieval = results["retrieval"]
    labels = [r["label"] for r in results["models"]]
    assert list(retrieval["models"]) == labels  # every compared model, by its label
    assert retrieval["candidates"] == [8, 32] and retrieval["num_test"] >= 32
    assert retrieval["pairs"]["source"] == str(VALID) and retrieval["pairs"]["kind"] == "sentence"
    assert [r["candidates"] for r in retrieval["bm25"]] == [8, 32]
    for label in labels:
        model = retrieval["models"][label]
        assert model["model_dir"] == next(r["output_dir"] for r in results["models"] if r["label"] == label)
        for method in ("cosine", "infonce"):
            assert [r["candidates"] for r in model[method]] == [8, 32]
            assert all(0.0 <= r[k] <= 1.0 for r in model[method] for k in ("top1", "top10", "mrr"))
        assert model["direct"][0]["candidates"] == 8 and "first" in model["infonce_loss"]

    # the pairs that were scored are saved, from the held-out corpus, and match the counts
    test_pairs = read_pairs(tmp_path / "retrieval-pairs" / "test.jsonl")
    assert len(test_pairs) == retrieval["num_test"]
    valid = _lines(VALID, retrieval["pairs"]["num_documents"])
    assert all(p.query in valid[p.doc_id] for p in test_pairs)

    assert (tmp_path / "retrieval.png").read_bytes()[:4] == b"\x89PNG"
    report = (tmp_path / "report.md").read_text()
    section = report[report.index("## Retrieval") : report.index("## Samples")]
    for title in (
        "### top-1 accuracy",
        "### top-10 accuracy",
        "### mean reciprocal rank",
        "![top-1 accuracy vs candidates](retrieval.png)",
    ):
        assert title in section, title
    header = f"| candidates | chance | bm25 | {labels[0]} cosine | {labels[0]} direct | {labels[0]} infonce |"
    assert header in section
    bm25_32 = retrieval["bm25"][1]["top1"]
    top1 = section[section.index("### top-1") : section.index("### top-10")]
    assert f"| 32 | 0.031 | {bm25_32:.3f} |" in top1  # the report prints the numbers of results.json
    mrr = section[section.index("### mean reciprocal rank") :]
    assert f"| 8 | {sum(1 / k for k in range(1, 9)) / 8:.3f} |" in mrr  # chance MRR of 8 candidates


def test_heldout_documents_skip_what_the_models_trained_on():
    config = load_compare_config(TINY, ["retrieval.num_documents=50"])
    config.data.source, config.data.eval_source, config.data.max_documents = str(TRAIN), None, 300
    documents, origin = heldout_documents(config)
    assert origin["first_document"] == 300 and len(documents) == 50
    assert documents == _lines(TRAIN, 350)[300:]  # the next documents of the training corpus, in order
    config.data.eval_source = str(VALID)
    documents, origin = heldout_documents(config)  # a held-out corpus is used from its start
    assert origin == {"source": str(VALID), "split": "validation", "first_document": 0, "num_documents": 50}
    assert documents == _lines(VALID, 50)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["retrieval.kind=summary"], r"key 'retrieval.kind' expects one of 'sentence', 'keywords', got 'summary'"),
        (
            ["retrieval.methods=[cosine, bm42]"],
            r"key 'retrieval.methods\[1\]' expects one of 'cosine', 'direct', 'infonce', got 'bm42'",
        ),
        (["retrieval.position=first"], r"key 'retrieval.position' expects one of"),
        (["retrieval.methods=[]"], r"retrieval.methods: empty list"),
        (["retrieval.candidates=[1, 32]"], r"at least 2"),
        (["data.max_documents=null"], r"held-out documents"),
    ],
)
def test_bad_retrieval_section_stops_before_training(tmp_path, overrides, message):
    calls = []
    with pytest.raises(UserError, match=message):  # closed choices fail at load, the rest in run_compare's checks
        config = load_compare_config(TINY, overrides)
        run_compare(config, tmp_path, prepare=lambda data, L: calls.append(L), progress=False)
    assert not calls  # nothing was prepared or trained
