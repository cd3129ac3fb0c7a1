"""The `genie` command: config flags, overrides, one-line errors, and a real train run."""

import json
import pathlib

import pytest

from genie_jax.cli import main
from genie_jax.config_loading import ConfigError, load_config, parse_config_args
from tests.train.conftest import TINY_TOKENIZER

CONFIG = str(pathlib.Path(__file__).resolve().parents[1] / "experiments/configs/coinrun.py")


def test_overrides_are_typed_and_applied():
    config, extras = parse_config_args(
        ["--config", f"{CONFIG}:smoke", "--config.tokenizer.num_steps=7", "--workdir", "W"]
    )
    assert config.tokenizer.num_steps == 7
    assert extras == {"workdir": "W"}
    assert load_config(f"{CONFIG}:case_study").tokenizer.model.encoder_dim == 512


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--config", f"{CONFIG}:smoke", "--config.tokenizer.num_stepz=7"], "num_stepz"),
        (["--config", f"{CONFIG}:smoke", "--config.tokenizer.num_steps=many"], "num_steps"),
        (["--config", f"{CONFIG}:nonsense"], "nonsense"),
        (["--config", "no/such/file.py:smoke"], "file.py"),
        ([], "--config"),
    ],
)
def test_bad_config_gives_one_line_error(argv, message):
    with pytest.raises(ConfigError, match=message) as error:
        parse_config_args(argv)
    assert "\n" not in str(error.value)


def test_train_command_end_to_end(coinrun_dir, tmp_path, capsys):
    workdir = tmp_path / "run"
    overrides = [f"--config.{key}={value}" for key, value in TINY_TOKENIZER.items()]
    argv = ["train", "tokenizer", "--config", f"{CONFIG}:smoke", "--workdir", str(workdir)]
    argv += ["--config.data_dir", coinrun_dir, *overrides, "--config.tokenizer.num_steps=3"]
    main(argv)
    assert "done at step 3" in capsys.readouterr().out
    assert (workdir / "checkpoints" / "3").is_dir()
    assert json.loads((workdir / "config.json").read_text())["data_dir"] == coinrun_dir
    main(argv)  # the same command again resumes and has nothing left to do
    assert "resumed tokenizer from step 3" in capsys.readouterr().out


def test_train_command_errors_are_one_line(tmp_path, capsys):
    argv = ["train", "tokenizer", "--config", f"{CONFIG}:smoke", "--workdir", str(tmp_path)]
    with pytest.raises(SystemExit, match="does not exist|missing|no such"):
        main([*argv, f"--config.data_dir={tmp_path / 'nowhere'}"])
    with pytest.raises(SystemExit, match="config.data_dir is empty"):
        main(argv)
    with pytest.raises(SystemExit, match="unknown config key .config.tokenizer.model.depth."):
        main([*argv, f"--config.data_dir={tmp_path}", "--config.tokenizer.model.depth=3"])
