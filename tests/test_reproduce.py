"""`masked-mixers reproduce --scale tiny`: every finding runs end to end and fills every field of the scorecard."""

import json
import math

import pytest
from conftest import TRAIN, VALID

from masked_mixers.cli import main
from masked_mixers.reproduce import FINDINGS, ReproduceRequest, run_reproduce
from masked_mixers.reproduce.scales import SCALES
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
    out, _, card = tiny_card
    f4 = next(e for e in card["findings"] if e["id"] == "F4")
    main = [row for row in f4["table"] if row["seed"] == 0 and row["budget"].startswith("equal compute time")]
    flops = [row for row in f4["table"] if row["seed"] == 0 and row["budget"].startswith("variant")]
    assert {row["model"] for row in main} == {row["model"] for row in flops} == {"mixer", "llama", "gpt2"}
    assert all(row["stopped_by"] == "max_steps" for row in main)  # equal compute time, as steps from the probe
    assert {row["model"]: row["steps"] for row in main}["llama"] == SCALES["tiny"].clm_steps
    assert all(row["stopped_by"] == "max_flops" for row in flops)
    width = {row["model"]: row["d_model"] for row in main}
    assert width["mixer"] > width["llama"] == {row["model"]: row["d_model"] for row in flops}["mixer"]  # memory-matched
    assert "equal compute time" in f4["budget"] and "equal training FLOPs" in f4["budget"]
    assert "side-by-side probe" in f4["budget"] and "s/step (blocks " in f4["budget"]
    assert [c["variant"] for c in f4["checks"]] == [False, False, False, True, True]
    notes = " ".join(f4["notes"])
    assert "learning-rate sweep" in notes and "chosen mixer" in notes and "at 25%/50%/75%/100%" in notes
    assert "seed 2: realized compute seconds mixer" in notes and "x Llama)" in notes
    assert (out / "F4" / "step-cost-probe.json").is_file()


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
    assert {(row["n_context"], row["candidates"]) for row in direct} == {(8, 7)}  # the query counts in n_context
    assert all(row["chance_ce"] == pytest.approx(math.log(7)) for row in direct)  # ln(n_context - 1)
    assert any("deviation from the reference" in note for note in f5["notes"])
    variants = [c for c in f5["checks"] if "exchangeable mixing init" in c["claim"]]
    assert variants and all(c["variant"] for c in variants)
    assert not any(
        c["variant"]
        for c in f5["checks"]
        if c["claim"].startswith("Mixer embeddings") and "exchangeable" not in c["claim"]
    )


@pytest.mark.slow
def test_tiny_f3_reports_protocol_variant_and_memory_matched(tiny_card):
    from masked_mixers.reproduce.f3_autoencoders import DEEP_MIXER, POSITIONED, SIDES

    _, _, card = tiny_card
    f3 = next(e for e in card["findings"] if e["id"] == "F3")
    assert {row["model"] for row in f3["table"]} == set(SIDES)
    protocol, variant, matched = f3["checks"]
    assert not protocol["variant"] and variant["variant"] and POSITIONED in variant["measured"]
    assert not matched["variant"] and DEEP_MIXER in matched["measured"] and "Memory-matched" in matched["claim"]
    assert "same output" in f3["protocol"] and any("same output" in note for note in f3["notes"])


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


# --- provenance: a saved finding is reused only when its code and config match ---------------------------------


@pytest.fixture
def fake_finding(monkeypatch):
    """A one-check finding "FX" in place of the paper's, counting how often it runs (no training: fast)."""
    from masked_mixers.reproduce import runner
    from masked_mixers.reproduce.finding import Finding, Measured
    from masked_mixers.reproduce.verdict import holds

    calls = []

    def run(ctx):
        calls.append(ctx.finding)
        check = holds("a claim", "a number", {"value": [1.0, 2.0, 3.0]}, True, "held")
        return Measured(checks=[check], budget="none", headline=None)

    finding = Finding(id="FX", title="Fake", claim="c", published="p", protocol="q", run=run)
    monkeypatch.setattr(runner, "FINDINGS", {"FX": finding})
    monkeypatch.setattr(runner, "RUN_ORDER", ("FX",))
    return runner, calls


def _request(tmp_path, **changes):
    return ReproduceRequest(scale="tiny", output_dir=str(tmp_path / "out"), data=str(TRAIN), progress=False, **changes)


@pytest.mark.parametrize("changed", ["code_sha256", "package_version"])
def test_a_finding_is_run_again_when_its_code_changes_and_kept_stale_on_request(
    fake_finding, tmp_path, monkeypatch, changed
):
    runner, calls = fake_finding
    first = run_reproduce(_request(tmp_path))["findings"][0]
    assert calls == ["FX"] and not first.get("stale")
    run_reproduce(_request(tmp_path))
    assert len(calls) == 1, "same code and config: reused"

    monkeypatch.setattr(runner, changed, lambda: "edited")
    rerun = run_reproduce(_request(tmp_path))["findings"][0]
    assert len(calls) == 2, "edited code: run again"
    key = "version" if changed == "package_version" else changed
    assert rerun["provenance"][key] == "edited" != first["provenance"][key] and not rerun.get("stale")

    monkeypatch.setattr(runner, changed, lambda: "edited again")
    kept = run_reproduce(_request(tmp_path, reuse_stale=True))["findings"][0]
    assert len(calls) == 2 and "edited" in kept["stale"] and key in kept["stale"]
    assert json.loads((tmp_path / "out" / "scorecard.json").read_text())["findings"][0]["stale"] == kept["stale"]
    markdown = (tmp_path / "out" / "scorecard.md").read_text()
    assert "(**stale**)" in markdown and f"**Stale.** {kept['stale']}" in markdown

    run_reproduce(_request(tmp_path, reuse_stale=True, eval_data=str(VALID)))
    assert len(calls) == 3, "another config is never reused, stale or not"


def test_the_scorecard_names_version_revision_and_hashes_per_finding(fake_finding, tmp_path):
    from masked_mixers.reproduce.provenance import code_sha256, package_version

    entry = run_reproduce(_request(tmp_path))["findings"][0]
    provenance = entry["provenance"]
    assert provenance["version"] == package_version() and provenance["code_sha256"] == code_sha256()
    assert len(provenance["config_sha256"]) == 64 and "revision" in provenance
    markdown = (tmp_path / "out" / "scorecard.md").read_text()
    assert f"code sha256 `{provenance['code_sha256']}`, config sha256 `{provenance['config_sha256']}`" in markdown
    assert f"version {provenance['version']}, revision `{provenance['revision'] or '-'}`" in markdown


def test_the_code_hash_covers_every_source_file_by_path_and_content(tmp_path):
    from masked_mixers.reproduce.provenance import code_sha256

    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    before = code_sha256(tmp_path)
    (tmp_path / "notes.md").write_text("not code")
    assert code_sha256(tmp_path) == before
    (tmp_path / "sub" / "b.py").write_text("y = 3\n")
    edited = code_sha256(tmp_path)
    assert edited != before
    (tmp_path / "sub" / "b.py").rename(tmp_path / "sub" / "c.py")
    assert code_sha256(tmp_path) not in (before, edited)


def test_a_saved_comparison_is_reused_only_if_this_code_trained_it(tmp_path):
    from masked_mixers.reproduce.context import CODE_FILE, Context

    (tmp_path / CODE_FILE).write_text(json.dumps({"code_sha256": "old"}))
    ctx = Context(scale=SCALES["tiny"], output_dir=tmp_path, code_sha256="new")
    assert not ctx._same_code(tmp_path)
    assert ctx.for_finding("F4")._same_code(tmp_path) is False
    assert Context(scale=SCALES["tiny"], output_dir=tmp_path, code_sha256="old")._same_code(tmp_path)
    assert Context(scale=SCALES["tiny"], output_dir=tmp_path, code_sha256="new", reuse_stale=True)._same_code(tmp_path)


# --- seeds and the paper's sizes ----------------------------------------------------------------------------------


def test_every_scale_runs_at_least_3_seeds():
    from masked_mixers.reproduce.verdict import MIN_SEEDS

    assert MIN_SEEDS == 3 and all(scale.seeds >= MIN_SEEDS for scale in SCALES.values())


def test_the_paper_scale_builds_each_findings_published_sizes(tmp_path):
    from masked_mixers.reproduce import f4_clm
    from masked_mixers.reproduce.context import Context

    paper = Context(scale=SCALES["paper"], output_dir=tmp_path)
    for asking in ("F4", "F1", "F5", "F6"):  # F1, F5 and F6 reuse F4's models, so they must build F4's sizes
        sizes = {
            s.name: (s.hidden_size, s.num_hidden_layers, s.seq_len) for s in f4_clm.specs(paper.for_finding(asking))
        }
        assert sizes == {"mixer": (1024, 8, 512), "llama": (512, 16, 512), "gpt2": (512, 16, 512)}, asking
        assert all(s.num_heads == 4 for s in f4_clm.specs(paper.for_finding(asking)) if s.family != "mixer")
    f3 = paper.for_finding("F3")
    assert [
        (f3.spec(f).hidden_size, f3.spec(f).encoder_layers) for f in ("mixer_autoencoder", "llama_autoencoder")
    ] == [
        (512, 8),
        (512, 8),
    ]
    assert f3.settings() == ["d1024-4+4", "memory-matched"]
    matched = [f3.spec(f, setting="memory-matched") for f in ("mixer_autoencoder", "llama_autoencoder")]
    assert [(s.hidden_size, s.encoder_layers, s.decoder_layers) for s in matched] == [(1024, 8, 8), (1024, 4, 4)]
    assert paper.for_finding("F7").spec("linear_mixer").hidden_size == 4096
    assert paper.for_finding("F2").spec("mixer").num_hidden_layers == 16
    cpu = Context(scale=SCALES["cpu"], output_dir=tmp_path)
    assert {(s.hidden_size, s.num_hidden_layers) for s in f4_clm.specs(cpu.for_finding("F1"))} == {(128, 4)}
