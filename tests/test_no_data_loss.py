"""Never delete or overwrite what the toolkit did not write (issue 24, item 1).

Each case plants a user's files where a command writes, runs the real CLI entry point and checks
that every planted file is byte-identical afterwards (faults.snapshot hashes the tree), with the
command's exit code and its one-line error where it refuses. The runs are tiny (faults.tiny_config).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from faults import expect_one_line, record, snapshot, tiny_config

from masked_mixers.cli import main
from masked_mixers.core.errors import UserError
from masked_mixers.runs import manifest
from masked_mixers.runs.config import load_run_config
from masked_mixers.runs.rundir import clear_run, load_run
from masked_mixers.training.train import train

ITEM = 24


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A finished tiny run with checkpoints (steps 2 and 4), shared by the module."""
    root = tmp_path_factory.mktemp("no-data-loss")
    train(load_run_config(tiny_config(root, max_steps=4, save_steps=2)))
    return root


def plant(folder: Path, files: dict[str, str]) -> dict[str, str]:
    """Write the user's files under `folder`; returns their snapshot (relative path -> hash)."""
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return snapshot(folder)


def kept(before: dict[str, str], folder: Path) -> None:
    """Every entry of `before` is still in `folder`, byte-identical."""
    after = snapshot(folder)
    assert {k: after.get(k) for k in before} == before


USER_FILES = {
    "home": {".bashrc": "alias ll='ls -l'\n", "notes/todo.txt": "buy milk\n"},
    "project": {"thesis.tex": "\\documentclass{article}\n", "chapters/one.tex": "Intro.\n"},
}


@pytest.mark.parametrize("kind", sorted(USER_FILES))
def test_push_into_a_users_folder_goes_into_a_new_subfolder(work, tmp_path, capsys, kind):
    dest = tmp_path / kind
    before = plant(dest, USER_FILES[kind])
    assert main(["push", str(work / "out"), str(dest)]) == 0
    kept(before, dest)
    published = dest / "out"
    assert (published / "config.json").is_file() and (published / "README.md").is_file()
    assert manifest.kind(published) == manifest.PUSH
    load_run(published)
    record(ITEM)


def test_push_onto_its_own_run_or_into_it_is_refused(work, capsys):
    run = work / "out"
    for dest in (run, run / "published"):
        expect_one_line(["push", run, dest], capsys, watched=(run,), names="run folder", item=ITEM)


def test_push_into_another_run_is_refused(work, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(work / "out", other)
    (other / "NOTES.txt").write_text("lr 5e-3 diverged at step 900\n")
    expect_one_line(["push", work / "out", other], capsys, watched=(other,), names=str(other), item=ITEM)


def test_repush_replaces_our_push_but_not_a_users_file_in_it(work, tmp_path, capsys):
    dest = tmp_path / "published"
    assert main(["push", str(work / "out"), str(dest)]) == 0
    (dest / "README.md").write_text("stale card\n")
    assert main(["push", str(work / "out"), str(dest)]) == 0  # our own earlier push: replaced as a whole
    assert "masked-mixers" in (dest / "README.md").read_text()
    (dest / "NOTES.txt").write_text("mine\n")
    expect_one_line(["push", work / "out", dest], capsys, watched=(dest,), names="NOTES.txt", item=ITEM)


def test_no_resume_refuses_a_run_folder_holding_user_files(work, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(work / "out", run)
    plant(
        run,
        {
            "model.safetensors.bak": "old weights\n",
            "tokenizer-notes/a.md": "merges\n",
            "model-card-draft.md": "# draft\n",
        },
    )
    config = tiny_config(tmp_path / "cfg", output_dir=run, max_steps=2)
    expect_one_line(
        ["train", config, "--no-resume"], capsys, watched=(run,), names="masked-mixers did not write", item=ITEM
    )


@pytest.mark.parametrize("legacy", [False, True], ids=["manifest", "old-run-without-manifest"])
def test_clear_run_removes_only_what_the_run_wrote(work, tmp_path, legacy):
    run = tmp_path / "run"
    shutil.copytree(work / "out", run)
    if legacy:
        (run / manifest.MANIFEST).unlink()
    user = plant(
        run,
        {
            "model.safetensors.bak": "old weights\n",
            "tokenizer-notes/a.md": "merges\n",
            "model-card-draft.md": "# draft\n",
            "training_args_notes.txt": "x\n",
        },
    )
    user = {
        k: v
        for k, v in user.items()
        if k.split("/")[0]
        in ("model.safetensors.bak", "tokenizer-notes", "model-card-draft.md", "training_args_notes.txt")
    }
    clear_run(run)
    kept(user, run)
    assert (
        not list(run.glob("checkpoint-*"))
        and not (run / "model.safetensors").exists()
        and not (run / "run.yaml").exists()
    )


def test_train_refuses_to_overwrite_the_users_config_in_the_output_folder(tmp_path, capsys):
    project = tmp_path / "proj"
    config = tiny_config(project, output_dir=project, max_steps=2)
    config.write_text("# my carefully commented config\n" + config.read_text())
    expect_one_line(["train", config], capsys, watched=(project,), names="run.yaml", item=ITEM)


def test_train_into_another_runs_checkpoint_is_refused(work, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(work / "out", other)
    config = tiny_config(tmp_path / "cfg", max_steps=2)
    for dest in (other / "checkpoint-2", other / "checkpoint-2" / "sub", other / "inner"):
        expect_one_line(
            ["train", config, "--output-dir", dest],
            capsys,
            watched=(other,),
            names="checkpoint" if "checkpoint" in str(dest) else "run folder",
            item=ITEM,
        )


def test_train_refuses_a_folder_with_a_users_model(tmp_path, capsys):
    folder = tmp_path / "downloaded"
    plant(folder, {"config.json": "{}\n", "model.safetensors": "not ours\n"})
    config = tiny_config(tmp_path / "cfg", output_dir=folder, max_steps=2)
    expect_one_line(["train", config], capsys, watched=(folder,), names="config.json", item=ITEM)


def test_compare_model_names_cannot_climb_out_of_the_models_folder(tmp_path, capsys):
    for name in ("..", "../x", "a/b", ".hidden"):
        compare = tmp_path / "compare.yaml"
        compare.write_text(
            json.dumps(
                {
                    "models": [
                        {"family": "mixer", "name": name, "hidden_size": 32, "num_hidden_layers": 1, "seq_len": 32}
                    ]
                }
            )
        )
        report = plant(tmp_path / "root", {"report.md": "# earlier report\n"})
        expect_one_line(
            ["compare", compare, "--output-dir", tmp_path / "root"],
            capsys,
            watched=(tmp_path / "root",),
            names="models[0].name",
            item=ITEM,
        )
        kept(report, tmp_path / "root")


def test_tilde_in_output_dir_is_the_home_folder(work, tmp_path, monkeypatch):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    config = load_run_config(tiny_config(tmp_path / "cfg", output_dir="~/x", max_steps=1, cache=work / "cache"))
    assert config.train.output_dir == str(home / "x")
    train(config)
    assert (home / "x" / "config.json").is_file() and not (cwd / "~").exists()
    record(ITEM)


def test_an_old_run_without_a_manifest_resumes_and_gets_one(work, tmp_path):
    run = tmp_path / "old"
    shutil.copytree(work / "out", run)
    for name in (
        manifest.MANIFEST,
        "train_summary.json",
        "checkpoint-4",
    ):  # an old run killed after its checkpoint at step 2
        shutil.rmtree(run / name) if (run / name).is_dir() else (run / name).unlink()
    result = train(
        load_run_config(tiny_config(tmp_path / "cfg", output_dir=run, max_steps=4, save_steps=2, cache=work / "cache"))
    )
    assert result.steps == 4 and not result.already_finished
    assert {"run.yaml", "model.safetensors", "checkpoint-4"} <= manifest.owned(run) and (
        run / manifest.MANIFEST
    ).is_file()
    load_run(run)
    record(ITEM)


def test_compare_refuses_an_output_folder_of_the_users(tmp_path, capsys):
    compare = tmp_path / "compare.yaml"
    compare.write_text(
        json.dumps({"models": [{"family": "mixer", "hidden_size": 32, "num_hidden_layers": 1, "seq_len": 32}]})
    )
    plant(tmp_path / "root", {"report.md": "# my own report\n", "data.csv": "a,b\n"})
    expect_one_line(
        ["compare", compare, "--output-dir", tmp_path / "root"],
        capsys,
        watched=(tmp_path / "root",),
        names="data.csv",
        item=ITEM,
    )


def test_manifest_helpers_touch_only_recorded_names(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    manifest.record(folder, "checkpoint-2", "metrics.jsonl")
    (folder / "checkpoint-2").mkdir()
    user = plant(folder, {"checkpoint-9/notes.txt": "mine\n", "metrics.jsonl.bak": "mine\n"})
    user = {k: v for k, v in user.items() if not k.startswith(("checkpoint-2", manifest.MANIFEST))}
    with pytest.raises(UserError, match="checkpoint-9"):
        manifest.check_own(folder, "checkpoint-9")  # a save of step 9 would replace the user's folder: refused
    assert not manifest.remove(folder, "checkpoint-9") and not manifest.remove(folder, "metrics.jsonl.bak")
    assert manifest.remove(folder, "checkpoint-2") and not (folder / "checkpoint-2").exists()
    manifest.forget_missing(folder, "checkpoint-*")
    assert manifest.owned(folder) == {"metrics.jsonl"} and manifest.foreign(folder) == [
        "checkpoint-9",
        "metrics.jsonl.bak",
    ]
    kept(user, folder)


def test_a_compare_folder_from_before_manifests_is_still_compares(tmp_path):
    from masked_mixers.compare.runner import claim_output

    old = tmp_path / "old"
    plant(old, {"results.json": "{}\n", "report.md": "# r\n", "models/mixer/run.yaml": "x\n"})
    claim_output(old)
    assert manifest.kind(old) == "compare" and not manifest.foreign(old)
    (tmp_path / "mine").mkdir()
    plant(tmp_path / "mine", {"results.json": "{}\n", "models/a.txt": "mine\n", "thesis.tex": "x\n"})
    with pytest.raises(UserError, match="did not write"):
        claim_output(tmp_path / "mine")
