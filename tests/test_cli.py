"""The CLI: help for every command, bad input as one line and exit status 2."""

import pytest

from masked_mixers.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: masked-mixers" in capsys.readouterr().out


def test_unknown_config_key_is_one_line_exit_2(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  hidden_sise: 64\n")
    assert main(["train", str(config), "--set", f"train.output_dir={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown key 'model.hidden_sise'" in err and "bad.yaml" in err
    assert not (tmp_path / "out").exists()  # nothing written for a config that failed to load


def test_missing_model_dir_is_one_line(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert "not a model directory" in capsys.readouterr().err
