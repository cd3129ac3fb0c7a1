"""The `wam` command (filled in as the World Action Model lands)."""

import sys


def main(argv: list[str] | None = None) -> int:
    del argv
    print("wam: no subcommands yet", file=sys.stderr)
    return 2
