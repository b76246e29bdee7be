"""`masked-mixers reproduce --scale tiny`: every finding runs end to end and fills every field of the scorecard."""

import json

import pytest
from conftest import TRAIN, VALID

from masked_mixers.cli import main
from masked_mixers.reproduce import FINDINGS, ReproduceRequest, run_reproduce
from masked_mixers.reproduce.verdict import AGREES, DISAGREES, INCONCLUSIVE

ENTRY_FIELDS = (
    "id",
    "title",
    "claim",
    "published",
    "protocol",
    "budget",
    "verdict",
    "reason",
    "checks",
    "table",
    "headline",
    "artifacts",
    "seeds",
    "seconds",
    "cpu_seconds",
)
CHECK_FIELDS = ("claim", "published", "measured", "verdict", "reason", "variant", "gaps", "n", "interval")


@pytest.fixture(scope="module")
def tiny_card(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    request = ReproduceRequest(
        scale="tiny",
        output_dir=str(out),
        data=str(TRAIN),
        eval_data=str(VALID),
        progress=False,
        cache_dir=str(out / "cache"),
    )
    return out, request, run_reproduce(request)


@pytest.mark.slow
def test_tiny_scale_writes_every_section_with_every_field(tiny_card):
    out, _, card = tiny_card
    assert [e["id"] for e in card["findings"]] == sorted(FINDINGS) == ["F1", "F2", "F3", "F4", "F5", "F6", "F7"]
    on_disk = json.loads((out / "scorecard.json").read_text())
    assert on_disk["findings"] == json.loads(json.dumps(card["findings"]))
    for entry in card["findings"]:
        assert not entry.get("error"), entry.get("error")
        for key in ENTRY_FIELDS:
            assert entry.get(key) not in (None, "", []), f"{entry['id']}: empty {key}"
        assert entry["verdict"] in (AGREES, DISAGREES, INCONCLUSIVE)
        for check in entry["checks"]:
            assert all(key in check for key in CHECK_FIELDS) and check["verdict"] in (AGREES, DISAGREES, INCONCLUSIVE)
            assert check["measured"], f"{entry['id']}: a check with nothing measured: {check['claim']}"
            assert check["interval"] is None or (check["n"] >= 3 and check["interval"][0] <= check["interval"][1]), (
                check
            )
        for artifact in entry["artifacts"]:
            assert (out / artifact).is_file(), f"{entry['id']}: missing {artifact}"
    markdown = (out / "scorecard.md").read_text()
    assert "| paired gaps (> 0: first side better) | n | 95% CI of the mean gap |" in markdown
    for entry in card["findings"]:
        assert f"## {entry['id']}. {entry['title']}" in markdown and entry["published"] in markdown
    assert (out / "scorecard.png").stat().st_size > 0
    assert card["scale"]["name"] == "tiny" and card["environment"]["torch"]


@pytest.mark.slow
def test_tiny_f4_runs_the_papers_budget_and_equal_flops_as_a_variant(tiny_card):
    _, _, card = tiny_card
    f4 = next(e for e in card["findings"] if e["id"] == "F4")
    main = [row for row in f4["table"] if row["seed"] == 0 and row["budget"].startswith("equal compute time")]
    flops = [row for row in f4["table"] if row["seed"] == 0 and row["budget"].startswith("variant")]
    assert {row["model"] for row in main} == {row["model"] for row in flops} == {"mixer", "llama", "gpt2"}
    assert all(row["stopped_by"] in ("max_compute_seconds", "max_steps") for row in main)
    assert all(row["stopped_by"] == "max_flops" for row in flops)
    width = {row["model"]: row["d_model"] for row in main}
    assert width["mixer"] > width["llama"] == {row["model"]: row["d_model"] for row in flops}["mixer"]  # memory-matched
    assert "equal compute time" in f4["budget"] and "equal training FLOPs" in f4["budget"]
    assert [c["variant"] for c in f4["checks"]] == [False, False, False, True, True]
    notes = " ".join(f4["notes"])
    assert "learning-rate sweep" in notes and "chosen mixer" in notes and "at 25%/50%/75%/100%" in notes


@pytest.mark.slow
def test_a_second_run_reuses_every_finding(tiny_card, capsys):
    out, request, card = tiny_card
    again = run_reproduce(request)
    printed = capsys.readouterr().out
    assert printed.count("reusing") >= len(FINDINGS)
    assert [e["verdict"] for e in again["findings"]] == [e["verdict"] for e in card["findings"]]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["reproduce", "F9"], "unknown finding 'F9'"),
        (["reproduce", "--scale", "huge"], "unknown scale 'huge'"),
        (["reproduce", "--data", "/nonexistent/train.jsonl"], "/nonexistent/train.jsonl: corpus file not found"),
        (["reproduce", "--device", "cudaa"], "cudaa"),
    ],
)
def test_bad_finding_or_scale_is_one_line_exit_2(argv, message, tmp_path, capsys):
    assert main([*argv, "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_tiny_f5_runs_the_direct_model_with_both_mixing_inits(tiny_card):
    _, _, card = tiny_card
    f5 = next(e for e in card["findings"] if e["id"] == "F5")
    direct = [row for row in f5["table"] if "mixing_init" in row]
    assert {(row["family"], row["mixing_init"]) for row in direct} == {
        (f, i) for f in ("mixer", "llama") for i in ("uniform", "exchangeable")
    }
    variants = [c for c in f5["checks"] if "exchangeable mixing init" in c["claim"]]
    assert variants and all(c["variant"] for c in variants)
    assert not any(
        c["variant"]
        for c in f5["checks"]
        if c["claim"].startswith("Mixer embeddings") and "exchangeable" not in c["claim"]
    )


def test_no_progress_hides_every_bar_the_trainers_included(tmp_path, monkeypatch):
    import datasets
    from transformers.utils import logging as transformers_logging

    from masked_mixers.core.progress import progress_bar
    from masked_mixers.runs.config import RunConfig
    from masked_mixers.runs.factory import spec_for
    from masked_mixers.training.train import training_arguments

    monkeypatch.setenv("TQDM_DISABLE", "0")  # restored after the test
    run = RunConfig(model=spec_for("mixer"))
    run.train.output_dir = str(tmp_path / "run")
    assert training_arguments(run, has_eval=False).disable_tqdm is False and not progress_bar(range(2)).disable
    try:
        assert main(["reproduce", "F9", "--no-progress", "--output-dir", str(tmp_path / "out")]) == 2
        assert training_arguments(run, has_eval=False).disable_tqdm is True
        assert progress_bar(range(2)).disable  # this package's bars, though tqdm was imported before the switch
        assert not transformers_logging.is_progress_bar_enabled() and not datasets.is_progress_bar_enabled()
    finally:
        transformers_logging.enable_progress_bar()
        datasets.enable_progress_bars()


def test_a_saved_comparison_missing_a_newer_setting_still_counts_as_the_same(tmp_path):
    import yaml

    from masked_mixers.compare.config import CompareConfig
    from masked_mixers.core.configfile import to_dict
    from masked_mixers.reproduce.context import _same
    from masked_mixers.runs.factory import spec_for

    wanted = to_dict(CompareConfig(models=[spec_for("mixer"), spec_for("llama")]))
    written = to_dict(CompareConfig(models=[spec_for("mixer"), spec_for("llama")]))
    del written["retrieval"]["direct_mixing_init"]  # as a file written before that setting existed
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump(written))
    assert _same(path, wanted)
    written["train"]["max_steps"] += 1
    path.write_text(yaml.safe_dump(written))
    assert not _same(path, wanted)
