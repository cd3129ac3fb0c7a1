"""The `genie` command.

  genie data coinrun --out DIR --episodes N [--level-seeds A:B] [--workers K] [--clip-len T]
  genie train tokenizer --config experiments/configs/coinrun.py:smoke --config.data_dir DIR \
      --workdir W [--config.key=value ...]
  genie demo [--out DIR]
"""

import argparse
import os
import pathlib
import sys
import time


def _parse_seed_range(text: str) -> tuple[int, int]:
    try:
        start, end = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"level seeds must look like A:B, got {text!r}") from None
    return start, end


def _data(args: argparse.Namespace) -> None:
    from genie_jax.data import build_coinrun

    path = build_coinrun(
        args.out,
        episodes=args.episodes,
        level_seeds=args.level_seeds,
        clip_len=args.clip_len,
        workers=args.workers,
        max_steps=args.max_steps,
    )
    print(f"dataset: {path}")


def _train(args: argparse.Namespace, rest: list[str]) -> None:
    from genie_jax.config_loading import parse_config_args
    from genie_jax.train.loop import train

    config, extras = parse_config_args(rest)
    if not extras["workdir"]:
        raise SystemExit("genie train: --workdir is required")
    summary = train(config, extras["workdir"], args.model)
    print(
        f"{args.model} done at step {summary['step']}; checkpoints in {summary['checkpoint_dir']}"
    )


def _demo(args: argparse.Namespace) -> None:
    from genie_jax.demo import run_demo

    run_demo(pathlib.Path(args.out), episodes=args.episodes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genie", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="build a dataset")
    data_kinds = data.add_subparsers(dest="dataset", required=True)
    coinrun = data_kinds.add_parser("coinrun", help="CoinRun clips (procgen, hard, random policy)")
    coinrun.add_argument("--out", required=True, help="data directory to write into")
    coinrun.add_argument("--episodes", type=int, required=True, help="episodes over all splits")
    coinrun.add_argument("--level-seeds", type=_parse_seed_range, default=(0, 10_000))
    coinrun.add_argument("--workers", type=int, default=1, help="parallel episode generators")
    coinrun.add_argument("--clip-len", type=int, default=16, help="frames per clip")
    coinrun.add_argument("--max-steps", type=int, default=1000, help="cap on episode length")

    train = commands.add_parser(
        "train", help="train a model (config flags: --config F.py:variant --config.k=v)"
    )
    train.add_argument("model", choices=["tokenizer", "lam", "dynamics"])

    demo = commands.add_parser("demo", help="the smoke pipeline: data -> tokenizer")
    demo.add_argument("--out", default="runs/demo", help="where data and runs go")
    demo.add_argument("--episodes", type=int, default=24)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command != "train" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    from genie_jax.config_loading import ConfigError
    from genie_jax.data import DataError
    from genie_jax.train.checkpoint import CheckpointNotFoundError
    from genie_jax.train.loop import TrainingDivergedError
    from genie_jax.train.pretrained import PretrainedMismatchError

    tic = time.perf_counter()
    try:
        if args.command == "data":
            _data(args)
        elif args.command == "train":
            _train(args, rest)
        elif args.command == "demo":
            _demo(args)
    except (
        ConfigError,
        DataError,
        CheckpointNotFoundError,
        PretrainedMismatchError,
        TrainingDivergedError,
    ) as error:
        raise SystemExit(f"genie {args.command}: error: {error}") from None
    print(f"[{time.perf_counter() - tic:.0f}s]")


if __name__ == "__main__":
    main()
