"""Run folders are self-contained Hugging Face models; `push` publishes them with a model card.

A real (tiny) training run makes the folder. It must load and generate with
`trust_remote_code=True` in a process where `masked_mixers` cannot be imported (its tokenizer with no
prompt and no warning, stdin closed), serve sentence-transformers and feature-extraction pipelines
from the trunk its auto_map names, publish L where tools look for it, and `push` must write only the
model, tokenizer, code and card to a local target or hand the same staged folder to huggingface_hub
(mocked at its boundary: no hub is reachable here). A transfixer folder saved without its code (as
before it was standalone) is published with it.
"""

import json
import os

import pytest
import torch
from conftest import run_without_package
from transformers import AutoModel, AutoModelForCausalLM

from masked_mixers.cli import main
from masked_mixers.runs.config import ModelSpec, RunConfig, TrainConfig
from masked_mixers.runs.factory import build_model
from masked_mixers.runs.hub import is_local_target
from masked_mixers.runs.rundir import load_run
from masked_mixers.training.train import train

L = 64


@pytest.fixture(scope="module")
def run_dir(tiny_prepared, tiny_data_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("hub") / "run"
    spec = ModelSpec(family="mixer", hidden_size=32, num_hidden_layers=2, seq_len=L)
    options = dict(
        output_dir=str(out),
        max_steps=6,
        batch_size=8,
        eval_steps=0,
        save_steps=3,
        logging_steps=2,
        warmup_steps=1,
        max_eval_batches=2,
    )
    train(RunConfig(model=spec, data=tiny_data_config, train=TrainConfig(**options)), prepared=tiny_prepared)
    return out


def _greedy(model, tokenizer, prompts, new=12):
    encoded = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**encoded, max_new_tokens=new, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return out.tolist()


GENERATE = """
import json, sys, warnings
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast
path = sys.argv[1]
model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).eval()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    print("<tokenizers>", file=sys.stderr, flush=True)  # nothing may come between: no prompt, no warning
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
    plain = PreTrainedTokenizerFast.from_pretrained(path)  # reads only the tokenizer files, runs no code
    print("</tokenizers>", file=sys.stderr, flush=True)
encoded = tokenizer(["once upon a time", "the dog"], return_tensors="pt", padding=True)
with torch.no_grad():
    out = model.generate(**encoded, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
print(json.dumps({
    "module": type(model).__module__,
    "ids": out.tolist(),
    "same_tokenizer": plain(["once upon a time"]).input_ids == tokenizer(["once upon a time"]).input_ids,
    "max_length": tokenizer.model_max_length,
    "padding_side": tokenizer.padding_side,
    "max_position_embeddings": model.config.max_position_embeddings,
    "warnings": [str(w.message) for w in caught],
    "masked_mixers_loaded": any(m.startswith("masked_mixers") for m in sys.modules),
}))
"""


def _generate_without_package(path, cwd) -> dict:
    """Load `path` where masked_mixers cannot be imported; the tokenizers must load silently (stdin closed)."""
    done = run_without_package(GENERATE, path, cwd=cwd)
    assert "<tokenizers>\n</tokenizers>" in done.stderr, done.stderr[-2000:]  # no prompt, no warning
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert "Do you wish" not in done.stdout and not got["warnings"] and got["same_tokenizer"]
    assert got["module"].startswith("transformers_modules.") and not got["masked_mixers_loaded"]
    return got


def test_a_run_folder_loads_and_generates_without_this_package(run_dir, tmp_path):
    config = json.loads((run_dir / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration.MaskedMixerConfig",
        "AutoModel": "modeling.MaskedMixerModel",
        "AutoModelForCausalLM": "modeling.MaskedMixerForCausalLM",
    }
    assert {"modeling.py", "configuration.py", "mixing.py", "cache.py", "positions.py", "lm_head.py"} <= {
        p.name for p in run_dir.iterdir()
    }
    got = _generate_without_package(run_dir, tmp_path)
    model, tokenizer = load_run(run_dir)
    assert got["ids"] == _greedy(model, tokenizer, ["once upon a time", "the dog"])  # the same model, the same text
    assert got["max_length"] == L and got["max_position_embeddings"] == L and got["padding_side"] == "right"


EMBED = """
import json, sys
from sentence_transformers import SentenceTransformer
from transformers import pipeline
path, texts = sys.argv[1], ["once upon a time", "the dog ran to the park"]
st = SentenceTransformer(path, trust_remote_code=True, device="cpu")
features = pipeline("feature-extraction", model=path, trust_remote_code=True)
print(json.dumps({
    "tokens": [t.tolist() for t in st.encode(texts, output_value="token_embeddings")],
    "pipeline": [features(text)[0] for text in texts],
    "max_seq_length": st.max_seq_length,
    "trunk": type(st[0].model).__name__,
    "masked_mixers_loaded": any(m.startswith("masked_mixers") for m in sys.modules),
}))
"""


def test_sentence_transformers_and_feature_extraction_read_the_trunk_without_this_package(run_dir, tmp_path):
    """auto_map's AutoModel is the trunk: its hidden states, per token, with no LM head."""
    done = run_without_package(EMBED, run_dir, cwd=tmp_path)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["trunk"] == "MaskedMixerModel" and got["max_seq_length"] == L and not got["masked_mixers_loaded"]
    trunk, tokenizer = AutoModel.from_pretrained(run_dir).eval(), load_run(run_dir)[1]
    for text, tokens, piped in zip(["once upon a time", "the dog ran to the park"], got["tokens"], got["pipeline"]):
        with torch.no_grad():
            expected = trunk(**tokenizer(text, return_tensors="pt")).last_hidden_state[0]  # (t, d)
        torch.testing.assert_close(torch.tensor(tokens), expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(torch.tensor(piped), expected, atol=1e-5, rtol=0)


def test_the_package_still_loads_its_own_classes_without_remote_code(run_dir):
    model, tokenizer = load_run(run_dir)  # trust_remote_code=False: the saved code is never run
    assert type(model).__module__ == "masked_mixers.models.masked_mixer.modeling"
    assert tokenizer.model_max_length == L and model.config.max_position_embeddings == L


def test_batched_pipeline_equals_one_by_one(run_dir):
    from transformers import pipeline

    model, tokenizer = load_run(run_dir)
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    prompts = ["once upon a time there was", "the dog", "lily and tom went to the park"]
    options = dict(max_new_tokens=10, do_sample=False, return_full_text=False)
    alone = [generator(p, **options)[0]["generated_text"] for p in prompts]
    batched = [r[0]["generated_text"] for r in generator(prompts, batch_size=3, **options)]
    assert batched == alone


PUSHED = {  # model, tokenizer, code, card; and the local target's record of what push wrote
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "README.md",
    ".masked-mixers.json",
}


def test_push_to_a_local_folder_writes_the_model_and_its_card(run_dir, tmp_path, capsys):
    target = tmp_path / "published" / "tiny-mixer"
    assert {".lock", "training_args.bin", "run.yaml", "metrics.jsonl"} <= {p.name for p in run_dir.iterdir()}
    assert main(["push", str(run_dir), f"file://{target}"]) == 0
    names = {p.name for p in target.iterdir()}
    code = {p.name for p in run_dir.glob("*.py")}
    assert names == PUSHED | code and {"modeling.py", "remote_code.py"} <= code  # no lock, pickle, checkpoint, log
    card = (target / "README.md").read_text()
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert card.splitlines()[card.splitlines()[1:].index("---") + 3] == "# tiny-mixer"  # titled by its name
    assert str(tmp_path) not in card and "/work" not in card and "shared/data" not in card  # no local path
    assert "license: other" in card and "no licence was chosen" in card
    assert (
        "library_name: transformers" in card and "family: `mixer`" in card and "pipeline_tag: text-generation" in card
    )
    assert f"{summary['parameters']['total']:,} parameters" in card
    assert "`train-lowercase.jsonl` (a local file)" in card and f"steps: {summary['steps']}" in card
    assert f"{summary['tokens_seen']:,}" in card and f"| loss | {summary['eval_metrics']['loss']:.4f} |" in card
    assert f"L = {L} tokens" in card and "sliding a window" in card and "at most L tokens" in card
    assert 'AutoModelForCausalLM.from_pretrained("tiny-mixer", trust_remote_code=True)' in card
    assert 'SentenceTransformer("tiny-mixer", trust_remote_code=True)' in card and "model.generate(" in card
    model = AutoModelForCausalLM.from_pretrained(target, trust_remote_code=False)
    assert model.config.max_position_embeddings == L
    # pushing again replaces the folder as a whole, here with a licence
    assert main(["push", str(run_dir), str(target), "--license", "mit"]) == 0
    assert {p.name for p in target.iterdir()} == names and not [
        p for p in target.parent.iterdir() if p.name.startswith(".")
    ]
    assert "license: mit" in (target / "README.md").read_text()


def test_push_refuses_a_licence_that_is_not_an_id(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["push", str(run_dir), str(tmp_path / "out"), "--license", "My Licence"])
    assert "not a hub licence id" in capsys.readouterr().err and not (tmp_path / "out").exists()


def _old_transfixer_folder(run_dir, folder):
    """A transfixer saved the way this package saved it before it was standalone: no code, no auto_map."""
    _, tokenizer = load_run(run_dir)
    spec = ModelSpec(family="transfixer", hidden_size=32, num_heads=2, num_hidden_layers=2, seq_len=L)
    torch.manual_seed(0)
    model, _ = build_model(
        spec, len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
    )
    model.config.padding_side = "right"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    for code in folder.glob("*.py"):
        code.unlink()
    config = json.loads((folder / "config.json").read_text())
    del config["auto_map"]
    (folder / "config.json").write_text(json.dumps(config))
    return model.eval(), tokenizer


def test_a_pushed_transfixer_loads_without_this_package_even_from_an_old_folder(run_dir, tmp_path):
    model, tokenizer = _old_transfixer_folder(run_dir, tmp_path / "old-transfixer")
    target = tmp_path / "published"
    assert main(["push", str(tmp_path / "old-transfixer"), str(target)]) == 0
    pushed = json.loads((target / "config.json").read_text())
    assert set(pushed["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForCausalLM"}
    card = (target / "README.md").read_text()
    assert "A prompt and its continuation together must fit in L tokens" in card and "Not recorded" in card
    got = _generate_without_package(target, tmp_path)
    assert got["ids"] == _greedy(model, tokenizer, ["once upon a time", "the dog"])


def test_push_refuses_a_family_whose_code_is_not_saved(run_dir, tmp_path, monkeypatch, capsys):
    import dataclasses

    from masked_mixers import models

    _old_transfixer_folder(run_dir, tmp_path / "run")
    family = dataclasses.replace(models.FAMILIES["transfixer"], standalone=False)
    monkeypatch.setitem(models._BY_MODEL_TYPE, "transfixer", family)
    capsys.readouterr()  # the save's progress bars
    assert main(["push", str(tmp_path / "run"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not save its code" in err[0] and not (tmp_path / "out").exists()


def test_push_to_the_hub_hands_the_staged_folder_to_huggingface_hub(run_dir, monkeypatch):
    import huggingface_hub

    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create"] = (repo_id, kwargs)
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        files = sorted(os.listdir(folder_path))
        calls["upload"] = (repo_id, files, open(os.path.join(folder_path, "README.md")).read())

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    assert main(["push", str(run_dir), "someone/tiny-mixer", "--private"]) == 0
    assert calls["create"] == ("someone/tiny-mixer", {"private": True, "exist_ok": True, "repo_type": "model"})
    repo, files, card = calls["upload"]
    assert repo == "someone/tiny-mixer" and "config.json" in files and "modeling.py" in files
    assert "training_args.bin" not in files and ".lock" not in files and ".masked-mixers.json" not in files
    assert "# someone/tiny-mixer" in card and 'from_pretrained("someone/tiny-mixer", trust_remote_code=True)' in card


def test_push_refuses_a_folder_without_a_model(tmp_path, capsys):
    assert main(["push", str(tmp_path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a model directory" in err[0]
    assert not (tmp_path / "out").exists()


def test_local_targets_and_hub_ids_are_told_apart():
    assert all(map(is_local_target, ["file:///x", "/abs/x", "./x", "../x", "~/x"]))
    assert not any(map(is_local_target, ["someone/model", "model"]))
