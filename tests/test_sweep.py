"""`masked-mixers sweep` (issue 28 item 1): points from a grid, resume after a kill, a failing point recorded
while the others finish, the learning-rate selection, and the submitit engine in its local mode.

Every point is a real `train` of a tiny model (d=32, 2 layers, L=32) on real TinyStories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from clirun import child_env
from conftest import TRAIN, VALID

from masked_mixers.cli import main
from masked_mixers.core.errors import UserError
from masked_mixers.sweep.config import load_sweep_config
from masked_mixers.sweep.points import ROW_KEYS
from masked_mixers.sweep.results import read_rows
from masked_mixers.sweep.runner import Plan

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("sweep-cache")


def base(cache: Path) -> dict:
    return {
        "model": {"family": "mixer", "hidden_size": 32, "num_hidden_layers": 2, "seq_len": 32},
        "data": {
            "source": str(TRAIN),
            "eval_source": str(VALID),
            "max_documents": 300,
            "max_eval_documents": 40,
            "vocab_size": 512,
            "cache_dir": str(cache),
        },
        "train": {
            "max_steps": 4,
            "batch_size": 8,
            "learning_rate": 0.005,
            "warmup_steps": 1,
            "eval_steps": 0,
            "save_steps": 0,
            "logging_steps": 2,
            "max_eval_batches": 2,
        },
    }


def write_sweep(folder: Path, cache: Path, **keys) -> Path:
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": base(cache), "output_dir": str(folder / "out"), **keys}))
    return path


def rows_by_point(out: Path) -> dict[str, list[dict]]:
    table: dict[str, list[dict]] = {}
    for row in read_rows(out):
        table.setdefault(row["point"], []).append(row)
    return table


def test_the_grid_bundles_and_points_expand_into_named_checked_points(tmp_path, cache):
    path = write_sweep(
        tmp_path,
        cache,
        grid={
            "family": [{"model.family": "mixer"}, {"model.family": "llama", "model.num_heads": 4}],
            "model.hidden_size": [32, 64],
        },
        points=[{"model.seq_len": 16}],
    )
    plan = Plan(load_sweep_config(path), str(path))
    names = [plan.point(s).name for s in plan.sets]
    assert names == ["mixer_d32", "mixer_d64", "llama_d32_h4", "llama_d64_h4", "L16"]
    point = plan.point(plan.sets[3])
    assert point.run["model"] == {**point.run["model"], "family": "llama", "hidden_size": 64, "num_heads": 4}
    assert point.run["train"]["output_dir"] == str(tmp_path / "out" / "points" / "llama_d64_h4")
    templated = write_sweep(
        tmp_path, cache, grid={"train.max_flops": [1.0e12]}, name="{model.family}-C{train.max_flops:.0e}"
    )
    config = load_sweep_config(templated)
    assert Plan(config, str(templated)).point({"train.max_flops": 1.0e12}).name == "mixer-C1e+12"


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"grid": {"model.hidden_sizes": [32]}}, "unknown key 'model.hidden_sizes'"),
        ({"grid": {"model.hidden_size": []}}, "grid key 'model.hidden_size' lists no values"),
        ({"grid": {"size": [64]}}, "size must map dotted config keys to values"),
        ({"points": [{"train.output_dir": "x"}]}, "train.output_dir is set by the sweep"),
        (
            {"grid": {"train.learning_rate": [0.01]}, "select_learning_rate": {"values": [0.01]}},
            "train.learning_rate is chosen by select_learning_rate",
        ),
        ({"grid": {"model.hidden_size": [32, 64]}, "name": "same"}, "would share the folder 'same'"),
        ({}, "no points"),
    ],
)
def test_a_bad_sweep_config_is_one_line_and_writes_nothing(tmp_path, cache, capsys, keys, message):
    path = write_sweep(tmp_path, cache, **keys)
    assert main(["sweep", str(path)]) == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_dry_run_lists_the_points_with_base_overrides_and_writes_nothing(tmp_path, cache, capsys):
    path = write_sweep(
        tmp_path, cache, grid={"model.hidden_size": [16, 32]}, name="d{model.hidden_size}-b{train.batch_size}"
    )
    assert main(["sweep", str(path), "--dry-run", "--set", "base.train.batch_size=4"]) == 0
    assert capsys.readouterr().out.split() == ["point", "d16-b4", "point", "d32-b4"]
    assert not (tmp_path / "out").exists()


def test_a_folder_holding_a_users_file_is_refused(tmp_path, cache, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    path = write_sweep(tmp_path, cache, grid={"model.hidden_size": [32]})
    assert main(["sweep", str(path)]) == 2
    assert "'notes.txt'" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["notes.txt"]


def test_a_failing_point_is_recorded_the_others_finish_and_rates_are_chosen(tmp_path, cache, capsys):
    """Rates 0.003 and 0.01 at 2e8 FLOPs; then 2e8 (the chosen rate's run, not trained again), 4e8, and 1 FLOP (less
    than a step: fails after its data is read)."""
    path = write_sweep(
        tmp_path,
        cache,
        grid={"train.max_flops": [2.0e8, 4.0e8, 1.0]},
        select_learning_rate={"values": [0.003, 0.01], "at_budget": 2.0e8},
    )
    assert main(["sweep", str(path), "--no-progress"]) == 1
    assert "1 point(s) failed" in capsys.readouterr().out
    out = tmp_path / "out"
    table = rows_by_point(out)
    assert all(len(rows) == 1 for rows in table.values()), table.keys()  # no point ran twice
    chosen = json.loads((out / "learning_rates.json").read_text())[0]
    losses = {float(k): v for k, v in chosen["eval_loss"].items()}
    assert chosen["chosen"] == min(losses, key=losses.get)
    lr = f"{chosen['chosen']:g}"
    assert set(table) == {"lr0.003_C2e8", "lr0.01_C2e8", f"lr{lr}_C4e8", f"lr{lr}_C1"}
    failed = table[f"lr{lr}_C1"][0]
    assert failed["status"] == "failed" and "less than one training step" in failed["error"]
    assert failed["budget_flops"] == 1.0 and failed["eval_loss"] is None
    done = table[f"lr{lr}_C4e8"][0]
    assert set(done) == set(ROW_KEYS) and done["status"] == "done" and done["learning_rate"] == chosen["chosen"]
    assert done["flops"] <= 4.0e8 and done["steps"] > 0 and done["eval_loss"] > 0 and done["params"] > 0
    assert (out / "points" / f"lr{lr}_C4e8" / "model.safetensors").is_file()
    assert "less than one training step" in (out / "logs" / f"lr{lr}_C1.log").read_text()


def test_a_sweep_killed_mid_way_resumes_without_redoing_finished_points(tmp_path, cache):
    path = write_sweep(tmp_path, cache, grid={"model.hidden_size": [16, 32]})
    out = tmp_path / "out"
    command = [sys.executable, "-m", "masked_mixers.cli", "sweep", str(path), "--no-progress"]
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(
        command, cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not read_rows(out) and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.2)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the sweep and its worker, mid-way through the second (last) point
        first.wait()
    finished = read_rows(out)
    assert len(finished) == 1 and finished[0]["status"] == "done", (tmp_path / "first.log").read_text()[-2000:]
    summary = out / "points" / finished[0]["point"] / "train_summary.json"
    stamp = summary.stat().st_mtime_ns
    assert main(["sweep", str(path), "--no-progress"]) == 0
    table = rows_by_point(out)
    assert set(table) == {"d16", "d32"} and all(len(rows) == 1 for rows in table.values())
    assert summary.stat().st_mtime_ns == stamp  # the finished point was not trained again


def test_the_submitit_engine_runs_a_two_point_sweep_in_its_local_mode(tmp_path, cache):
    pytest.importorskip("submitit")
    path = write_sweep(
        tmp_path,
        cache,
        grid={"model.hidden_size": [16, 32]},
        engine={"name": "submitit", "cluster": "local", "parameters": {"timeout_min": 10}, "poll_seconds": 0.2},
    )
    assert main(["sweep", str(path), "--no-progress"]) == 0
    out = tmp_path / "out"
    table = rows_by_point(out)
    assert {name: rows[0]["status"] for name, rows in table.items()} == {"d16": "done", "d32": "done"}
    assert any((out / ".submitit").rglob("*_result.pkl"))  # the jobs ran through submitit


def test_submitit_settings_it_refuses_are_one_line(tmp_path, cache):
    pytest.importorskip("submitit")
    from masked_mixers.sweep.config import EngineConfig
    from masked_mixers.sweep.engines import SubmititEngine

    with pytest.raises(UserError, match="engine: submitit refuses the settings"):
        SubmititEngine(EngineConfig(name="submitit", cluster="local", parameters={"no_such": 1}), tmp_path)
