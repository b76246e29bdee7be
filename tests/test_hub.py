"""Run folders are self-contained Hugging Face models; `push` publishes them with a model card.

A real (tiny) training run makes the folder. It must load and generate with
`trust_remote_code=True` in a process where `masked_mixers` cannot be imported, publish L where
tools look for it, and `push` must write the card and the model to a local target or hand the
same staged folder to huggingface_hub (mocked at its boundary: no hub is reachable here).
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModelForCausalLM

from masked_mixers.cli import main
from masked_mixers.runs.config import ModelSpec, RunConfig, TrainConfig
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


BLOCKED = textwrap.dedent(
    """
    import importlib.abc, json, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "masked_mixers" or name.startswith("masked_mixers."):
                raise ImportError(f"{name} is blocked in this test")
    sys.meta_path.insert(0, Block())
    sys.path = [p for p in sys.path if p not in ("", ".") and "wt-" not in p]
    try:
        import masked_mixers
    except ImportError:
        pass
    else:
        raise SystemExit("masked_mixers is importable")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    path = sys.argv[1]
    model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
    encoded = tokenizer(["once upon a time", "the dog"], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**encoded, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    print(json.dumps({
        "module": type(model).__module__,
        "ids": out.tolist(),
        "max_length": tokenizer.model_max_length,
        "padding_side": tokenizer.padding_side,
        "max_position_embeddings": model.config.max_position_embeddings,
        "masked_mixers_loaded": any(m.startswith("masked_mixers") for m in sys.modules),
    }))
    """
)


def test_a_run_folder_loads_and_generates_without_this_package(run_dir, tmp_path):
    config = json.loads((run_dir / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration.MaskedMixerConfig",
        "AutoModelForCausalLM": "modeling.MaskedMixerForCausalLM",
    }
    assert {"modeling.py", "configuration.py", "mixing.py", "cache.py", "positions.py", "lm_head.py"} <= {
        p.name for p in run_dir.iterdir()
    }
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED, str(run_dir)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["module"].startswith("transformers_modules.") and not got["masked_mixers_loaded"]
    model, tokenizer = load_run(run_dir)
    assert got["ids"] == _greedy(model, tokenizer, ["once upon a time", "the dog"])  # the same model, the same text
    assert got["max_length"] == L and got["max_position_embeddings"] == L and got["padding_side"] == "right"


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


def test_push_to_a_local_folder_writes_the_model_and_its_card(run_dir, tmp_path, capsys):
    target = tmp_path / "published" / "tiny-mixer"
    assert main(["push", str(run_dir), f"file://{target}"]) == 0
    names = {p.name for p in target.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "modeling.py",
        "tokenizer.json",
        "README.md",
        "train_summary.json",
    } <= names
    assert not any(n.startswith("checkpoint-") for n in names)  # the Trainer's checkpoints stay home
    card = (target / "README.md").read_text()
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert "library_name: transformers" in card and "family: `mixer`" in card
    assert f"{summary['parameters']['total']:,} parameters" in card
    assert (
        "train-lowercase.jsonl" in card
        and f"steps: {summary['steps']}" in card
        and f"{summary['tokens_seen']:,}" in card
    )
    assert f"| loss | {summary['eval_metrics']['loss']:.4f} |" in card
    model = AutoModelForCausalLM.from_pretrained(target, trust_remote_code=False)
    assert model.config.max_position_embeddings == L
    # pushing again replaces the folder as a whole
    assert main(["push", str(run_dir), str(target)]) == 0
    assert {p.name for p in target.iterdir()} == names and not [
        p for p in target.parent.iterdir() if p.name.startswith(".")
    ]


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
    assert 'from_pretrained("someone/tiny-mixer", trust_remote_code=True)' in card


def test_push_refuses_a_folder_without_a_model(tmp_path, capsys):
    assert main(["push", str(tmp_path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a model directory" in err[0]
    assert not (tmp_path / "out").exists()


def test_local_targets_and_hub_ids_are_told_apart():
    assert all(map(is_local_target, ["file:///x", "/abs/x", "./x", "../x", "~/x"]))
    assert not any(map(is_local_target, ["someone/model", "model"]))
