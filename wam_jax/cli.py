"""The `wam` command.

  wam data babyai --out DIR --level BabyAI-GoToLocal-v0 --episodes N [--seeds A:B] [--clip-len T]

Bad input or bad data on disk ends with a one-line message on stderr and exit status 2.
"""

import argparse
import os
import sys


def _parse_seed_range(text: str) -> tuple[int, int]:
    try:
        start, end = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must look like A:B, got {text!r}") from None
    return start, end


def _data(args: argparse.Namespace) -> None:
    from wam_jax.data import build_babyai, read_metadata

    path = build_babyai(
        args.out,
        level=args.level,
        episodes=args.episodes,
        seeds=args.seeds,
        clip_len=args.clip_len,
    )
    print(f"dataset: {path}")
    bot = read_metadata(path).get("bot", {})
    for split, stats in bot.items():
        print(
            f"  {split}: bot success {stats['success_rate']:.3f}, "
            f"mean length {stats['mean_length']:.2f} actions"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wam", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="build a dataset")
    data_kinds = data.add_subparsers(dest="dataset", required=True)
    babyai = data_kinds.add_parser("babyai", help="BabyAI episodes played by the expert bot")
    babyai.add_argument("--out", required=True, help="data directory to write into")
    babyai.add_argument("--level", default="BabyAI-GoToLocal-v0", help="registered BabyAI level")
    babyai.add_argument("--episodes", type=int, required=True, help="episodes over all splits")
    babyai.add_argument(
        "--seeds", type=_parse_seed_range, default=(0, 100_000), help="env seeds A:B"
    )
    babyai.add_argument("--clip-len", type=int, default=16, help="frames per example")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    from genie_jax.data.errors import DataError

    try:
        if args.command == "data":
            _data(args)
    except DataError as error:
        print(f"wam {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
