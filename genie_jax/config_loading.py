"""Loads `path.py:variant` experiment configs with `--config.key=value` overrides.

Parsing goes through absl's `config_flags`, so overrides are type-checked against the config
and unknown keys are refused, with a one-line error naming the key.
"""

import pathlib
from collections.abc import Sequence

import ml_collections
from absl import flags
from ml_collections import config_flags


class ConfigError(ValueError):
    pass


def parse_config_args(
    argv: Sequence[str], *, extra_string_flags: Sequence[str] = ("workdir",)
) -> tuple[ml_collections.ConfigDict, dict[str, str | None]]:
    """`["--config", "f.py:smoke", "--config.a=1", "--workdir", "W"]` -> (config, {"workdir": W}).

    Raises ConfigError with one line for a missing/unreadable config file, a bad variant, an
    unknown key or a value of the wrong type.
    """
    spec = _config_spec(argv)
    if spec is not None and not pathlib.Path(spec.partition(":")[0]).is_file():
        raise ConfigError(f"config file {spec.partition(':')[0]} does not exist")
    flag_values = flags.FlagValues()
    full_argv = ["genie", *argv]
    config_flags.DEFINE_config_file(
        "config",
        None,
        "experiment config: path.py[:variant]",
        flag_values=flag_values,
        sys_argv=full_argv,  # overrides are read from here, not from sys.argv
    )
    for name in extra_string_flags:
        flags.DEFINE_string(name, None, name, flag_values=flag_values)
    try:
        flag_values(full_argv, known_only=False)
    except flags.Error as error:
        raise ConfigError(_first_line(error)) from None
    except (KeyError, AttributeError) as error:  # ConfigDict's unknown-field errors
        raise ConfigError(_unknown_key_message(argv, str(error.args[0]).strip("'\""))) from None
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise ConfigError(f"bad config: {_first_line(error)}") from None
    if flag_values["config"].value is None:
        raise ConfigError("--config path.py[:variant] is required")
    try:
        config = flag_values.config
    except Exception as error:  # the config file is executed lazily
        raise ConfigError(f"could not load --config: {_first_line(error)}") from None
    extras = {name: flag_values[name].value for name in extra_string_flags}
    return config, extras


def load_config(spec: str, overrides: dict | None = None) -> ml_collections.ConfigDict:
    """`load_config("experiments/configs/coinrun.py:smoke", {"data_dir": D})` for scripts/tests."""
    argv = ["--config", spec]
    for key, value in (overrides or {}).items():
        argv.append(f"--config.{key}={value}")
    config, _ = parse_config_args(argv, extra_string_flags=())
    return config


def _config_spec(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.removeprefix("--config=")
    return None


def _unknown_key_message(argv: Sequence[str], key: str) -> str:
    for arg in argv:
        name = arg.split("=")[0].removeprefix("--")
        if name.startswith("config.") and name.split(".")[-1] == key:
            return f"unknown config key {name!r}"
    return f"unknown config key {key!r}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
