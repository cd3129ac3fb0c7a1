"""The `wam` command.

  wam data babyai --out DIR --level BabyAI-GoToLocal-v0 --episodes N [--seeds A:B] [--clip-len T]
      [--expert bot|full_view] [--expert-noise P] [--blocker-noise Q]
      [--actor W [--actor-step S] [--actor-temperature T]]   (W's policy plays, the full-view
      expert labels every state it reaches: DAgger's data, read by a run with
      --config.wam.on_policy_data_dir DIR)
  wam train --config experiments/configs/babyai.py:smoke --config.data_dir DIR \
      --config.tokenizer_workdir W1 --workdir W [--config.wam.label_fraction=0.1 ...]
  wam eval --workdir W --episodes K [--seeds A:B] [--no-imagine] [--action-temperature T]
           [--sample-seed D] [--action-source policy|imagination] [--max-steps K]
           [--batch-size E]
  wam label --workdir W --out FILE.npz [--threshold P] [--pair-check] [--data-dir DIR]
      (W's inverse dynamics names the actions of every training window; a run reads them
      with --config.wam.named_actions FILE.npz; prints the agreement with the stored actions
      and the confusion counts, stored by named)
  wam summarize --out study.json W1 W2 ...   (one row per evaluated run; seed groups, each
      compared with BC at the same training steps; each run paired with the BC run of its
      seed on the test seeds both played; a W/eval/step_N_... directory instead of W picks
      that evaluation, not the newest)
  wam bench train --config experiments/configs/babyai.py:smoke [--steps N] [--warmup K] \
      [--batch-size B] [--out F] [--config.data_dir DIR]   (the last line is one JSON object)

`train`, `eval` and `bench` first join a multi-process run when one is asked for or detected
(`--distributed {auto,on,off}` and the explicit triple, as for the `genie` command).

Bad input or bad data on disk ends with a one-line message on stderr and exit status 2.
"""

import argparse
import os
import sys

from genie_jax.cli import add_bench_train_options, parse_seed_range, user_errors
from genie_jax.train.distributed import (
    add_cli_options,
    exit_if_peer_lost,
    initialize_from_args,
)

# Each joins a multi-process run (if any) first.
DEVICE_COMMANDS = ("train", "eval", "label", "bench")


def _data(args: argparse.Namespace) -> None:
    from wam_jax.data import build_babyai, read_metadata

    expert, clip_len = args.expert, args.clip_len
    if args.actor:
        # The actor's episodes are labelled by the full-view expert, cut as the actor saw them.
        expert = expert or "full_view"
        clip_len = clip_len or _run_clip_len(args.actor)
    path = build_babyai(
        args.out,
        level=args.level,
        episodes=args.episodes,
        seeds=args.seeds,
        clip_len=clip_len or 16,
        expert_noise=args.expert_noise,
        blocker_noise=args.blocker_noise,
        expert=expert or "bot",
        actor=args.actor,
        actor_step=args.actor_step,
        actor_temperature=args.actor_temperature,
    )
    print(f"dataset: {path}")
    bot = read_metadata(path).get("bot", {})
    player, differs = ("policy", "not the expert's") if args.actor else ("bot", "changed by noise")
    for split, stats in bot.items():
        print(
            f"  {split}: {player} success {stats['success_rate']:.3f}, "
            f"mean length {stats['mean_length']:.2f} actions"
            + (
                f", {stats['noise_changed_share']:.3f} of them {differs}"
                if "noise_changed_share" in stats
                else ""
            )
        )


def _run_clip_len(workdir: str) -> int | None:
    """The clip length a `wam train` run trained on (None when it has no config.json; the
    build then refuses the workdir in its own words)."""
    import json

    from genie_jax.train.workdir import workdir_path

    path = workdir_path(workdir) / "config.json"
    return int(json.loads(path.read_text())["clip_len"]) if path.is_file() else None


def _train(rest: list[str]) -> None:
    from genie_jax.config_loading import parse_config_args
    from wam_jax.task import train_wam

    config, extras = parse_config_args(rest)
    if not extras["workdir"]:
        raise SystemExit("wam train: --workdir is required")
    summary = train_wam(config, extras["workdir"])
    print(f"wam done at step {summary['step']}; checkpoints in {summary['checkpoint_dir']}")


def _eval(args: argparse.Namespace) -> None:
    import json

    from wam_jax.evaluate import evaluate_wam

    metrics = evaluate_wam(
        args.workdir,
        episodes=args.episodes,
        seeds=args.seeds,
        step=args.step,
        imagine=not args.no_imagine,
        level=args.level,
        action_temperature=args.action_temperature,
        action_source=args.action_source,
        max_steps=args.max_steps,
        sample_seed=args.sample_seed,
        batch_size=args.batch_size,
    )
    print(f"eval outputs: {metrics['meta']['outputs']}")
    headline = {k: metrics[k] for k in ("success_rate", "mean_episode_length")}
    headline["random_policy_success_rate"] = metrics["random_policy"]["success_rate"]
    headline["success_within"] = metrics["success_within"]
    headline["random_policy_success_within"] = metrics["random_policy"]["success_within"]
    print(json.dumps(headline))


def _label(args: argparse.Namespace) -> None:
    import json

    import tqdm

    from genie_jax.config_loading import ConfigError
    from genie_jax.data.source import open_config_split
    from wam_jax.agent import load_agent
    from wam_jax.labelling import name_split_actions

    agent = load_agent(args.workdir, step=args.step)
    section = agent.config.wam
    if section.behaviour_cloning or section.stage == "pretrain":
        kind = "behaviour cloning" if section.behaviour_cloning else "pretrain (latent actions)"
        raise ConfigError(
            f"{args.workdir} is a {kind} run: its action head never learned real actions "
            "between frames; label with a joint or align run"
        )
    source = open_config_split(agent.config, "train", data_dir=args.data_dir)
    with tqdm.tqdm(total=len(source), desc="label", unit="window") as bar:
        named = name_split_actions(
            agent,
            source,
            threshold=args.threshold,
            pair_check=args.pair_check,
            batch_size=args.batch_size,
            progress=lambda done, _: bar.update(done - bar.n),
        )
    named.meta["labeller"] = str(args.workdir)
    path = named.save(args.out)
    print(f"named actions: {path}")
    print(json.dumps(named.meta))


def _bench(args: argparse.Namespace, rest: list[str]) -> None:
    from genie_jax.bench.train import bench_train, emit
    from genie_jax.config_loading import parse_config_args
    from wam_jax.bench import wam_bench_model

    config, _ = parse_config_args(rest, extra_string_flags=())
    result = bench_train(
        config,
        wam_bench_model(config),
        steps=args.steps,
        warmup=args.warmup,
        batch_size=args.batch_size,
        matmul_size=args.matmul_size,
        attention=args.attention,
        config_args=rest,
    )
    emit(result, args.out)


def _summarize(args: argparse.Namespace) -> None:
    from wam_jax.study_table import format_table, summarize_runs

    print(format_table(summarize_runs(args.workdirs, args.out)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wam", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback instead of a one-line error"
    )
    add_cli_options(parser)
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="build a dataset")
    data_kinds = data.add_subparsers(dest="dataset", required=True)
    babyai = data_kinds.add_parser("babyai", help="BabyAI episodes played by the expert bot")
    babyai.add_argument("--out", required=True, help="data directory to write into")
    babyai.add_argument("--level", default="BabyAI-GoToLocal-v0", help="registered BabyAI level")
    babyai.add_argument("--episodes", type=int, required=True, help="episodes over all splits")
    babyai.add_argument(
        "--seeds", type=parse_seed_range, default=(0, 100_000), help="env seeds A:B"
    )
    babyai.add_argument(
        "--clip-len",
        type=int,
        default=None,
        help="frames per example (default 16; with --actor, the actor run's clip length)",
    )
    babyai.add_argument(
        "--expert",
        default=None,
        help="who plays and labels: `bot` (the default), one BabyAI bot through each episode "
        "(BabyAI's demonstrations); `full_view`, a bot made afresh at every state that sees "
        "the whole room (its choice depends on the frame and mission alone; the only one "
        "that labels an --actor's states)",
    )
    babyai.add_argument(
        "--expert-noise",
        type=float,
        default=0.0,
        help="per-step probability of a random movement the bot then recovers from (DART)",
    )
    babyai.add_argument(
        "--blocker-noise",
        type=float,
        default=0.0,
        help="per-step probability, next to an object the mission does not name, of a move "
        "that meets it (forward into it, or the turn that faces it); the bot recovers",
    )
    babyai.add_argument(
        "--actor",
        default="",
        help="a `wam train` workdir whose policy plays instead of the bot; the full_view "
        "expert labels every state it reaches (DAgger). Write it to a directory of its own",
    )
    babyai.add_argument(
        "--actor-step", type=int, default=None, help="the actor's checkpoint (default: newest)"
    )
    babyai.add_argument(
        "--actor-temperature",
        type=float,
        default=1.0,
        help="the actor's action sampling temperature (0: argmax)",
    )

    commands.add_parser(
        "train", help="train the WAM (--config FILE:VARIANT --workdir W [--config.key=value])"
    )
    evaluate = commands.add_parser("eval", help="closed-loop BabyAI episodes on held-out seeds")
    evaluate.add_argument("--workdir", required=True, help="a `wam train` workdir")
    evaluate.add_argument("--episodes", type=int, default=100, help="episodes to play")
    evaluate.add_argument(
        "--seeds",
        type=parse_seed_range,
        default=None,
        help="env seeds A:B to draw episodes from (default: the dataset's test seeds)",
    )
    evaluate.add_argument("--level", default=None, help="default: the run's config.level")
    evaluate.add_argument("--step", type=int, default=None, help="checkpoint (default newest)")
    evaluate.add_argument(
        "--no-imagine", action="store_true", help="skip the imagined frames (policy only)"
    )
    evaluate.add_argument(
        "--action-temperature",
        type=float,
        default=0.0,
        help="0: the policy's argmax action (default); T > 0: sample from softmax(logits / T)",
    )
    evaluate.add_argument(
        "--sample-seed",
        type=int,
        default=0,
        help="the draw of sampled actions and imagined frames (default 0); another seed is "
        "another draw, written to its own eval directory",
    )
    evaluate.add_argument(
        "--action-source",
        choices=["policy", "imagination"],
        default="policy",
        help="policy: the policy head (default); imagination: imagine the next frame with the "
        "action unknown, then the action head's action between the two frames",
    )
    evaluate.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="end an episode not won after this many actions, as a loss (default: the "
        "level's own limit); for the WAM and the random policies alike",
    )
    evaluate.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="episodes played side by side at most (default 256; about 12 MB of memory an "
        "episode at the smoke sizes); the results do not depend on it",
    )
    bench = commands.add_parser(
        "bench", help="the WAM's sharded train step: time, memory, MFU (last line: JSON)"
    )
    bench.add_argument("kind", choices=["train"])
    add_bench_train_options(bench)
    bench.add_argument("--out", help="also write the JSON here")
    label = commands.add_parser(
        "label", help="name the training video's actions with a WAM's inverse dynamics"
    )
    label.add_argument("--workdir", required=True, help="the labeller: a `wam train` run")
    label.add_argument("--out", required=True, help="the .npz file to write")
    label.add_argument("--step", type=int, default=None, help="checkpoint (default newest)")
    label.add_argument(
        "--data-dir", default=None, help="the data to label (default: the labeller's own)"
    )
    label.add_argument(
        "--threshold",
        type=float,
        default=0.0,
        help="leave an action unnamed where the labeller's probability is below this",
    )
    label.add_argument(
        "--pair-check",
        action="store_true",
        help="also name each transition from its two frames alone; leave it unnamed where "
        "the two names differ",
    )
    label.add_argument("--batch-size", type=int, default=64, help="windows per model call")
    summarize = commands.add_parser("summarize", help="one table from several `wam eval`s")
    summarize.add_argument("--out", required=True, help="JSON file to write")
    summarize.add_argument(
        "workdirs",
        nargs="+",
        help="evaluated `wam train` workdirs (each one's newest evaluation), or evaluation "
        "directories (W/eval/step_N_...) to pick one",
    )
    for name in DEVICE_COMMANDS:
        add_cli_options(commands.choices[name], in_subcommand=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    as_program = argv is None  # this process is the command (not a call from Python)
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command not in ("train", "bench") and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    from wam_jax.data.vocab import UnknownWordError
    from wam_jax.study_table import StudyTableError

    try:
        if args.command in DEVICE_COMMANDS:
            # One line for the distributed runtime's own fatal errors, too (not under --debug).
            label = f"wam {args.command}" if as_program and not args.debug else None
            initialize_from_args(args, error_label=label)
        if args.command == "data":
            _data(args)
        elif args.command == "train":
            _train(rest)
        elif args.command == "eval":
            _eval(args)
        elif args.command == "label":
            _label(args)
        elif args.command == "summarize":
            _summarize(args)
        elif args.command == "bench":
            _bench(args, rest)
    except (*user_errors(), UnknownWordError, StudyTableError) as error:
        if args.debug:
            raise
        print(f"wam {args.command}: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        if not args.debug:
            exit_if_peer_lost(error, f"wam {args.command}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
