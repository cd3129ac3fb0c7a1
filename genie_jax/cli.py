"""The `genie` command.

  genie data coinrun --out DIR --episodes N [--level-seeds A:B] [--workers K] [--clip-len T]
  genie train tokenizer --config experiments/configs/coinrun.py:smoke --config.data_dir DIR \
      --workdir W [--config.key=value ...]
  genie train lam --config ... --config.data_dir DIR --workdir W2
  genie train dynamics --config ... --config.data_dir DIR --config.tokenizer_workdir W1 \
      --config.lam_workdir W2 --workdir W3
  genie play --workdir W3 [--image PATH] [--actions 0,3,3,1 --out rollout.gif]
  genie eval --workdir W3 [--split test] [--step N] [--num-clips K]
  genie bench sample --config experiments/configs/coinrun.py:smoke [--workdir W3] [--out F]
  genie bench train --config experiments/configs/coinrun.py:tiny --model tokenizer|lam|dynamics \
      [--steps N] [--warmup K] [--batch-size B] [--out F] [--config.data_dir DIR]
  genie plan --config experiments/configs/coinrun.py:paper --mesh data=16,fsdp=16,tensor=1 \
      --device v5p [--model dynamics|tokenizer|lam] [--batch-size N] [--json] [--xla]
  genie demo [--out DIR]

Commands that train or evaluate first join a multi-process run when one is asked for or
detected (`--distributed {auto,on,off}`, `--coordinator HOST:PORT --num-processes N
--process-id I`, or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID); these
options go before or after the command name.
"""

import argparse
import os
import pathlib
import sys
import time

from genie_jax.train.distributed import (
    add_cli_options,
    exit_if_peer_lost,
    initialize_from_args,
)

# The commands that use devices: each joins a multi-process run (if any) before anything else.
DEVICE_COMMANDS = ("train", "play", "eval", "bench", "demo")


def parse_seed_range(text: str) -> tuple[int, int]:
    """`"A:B"` -> (A, B), an argparse type (the `wam` command uses it too)."""
    try:
        start, end = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed range must look like A:B, got {text!r}") from None
    return start, end


def add_bench_train_options(parser: argparse.ArgumentParser) -> None:
    """The `bench train` options (the `wam` command takes them too)."""
    parser.add_argument("--steps", type=int, default=10, help="train: timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="train: untimed steps first")
    parser.add_argument("--batch-size", type=int, help="train: global batch (default: config's)")
    parser.add_argument(
        "--matmul-size",
        type=int,
        help="train: side of the peak-FLOP/s matmul (default 8192 on accelerators, 4096 on CPU)",
    )
    parser.add_argument(
        "--attention",
        choices=["auto", "xla", "cudnn"],
        default="auto",
        help="attention kernel: auto (cuDNN on a GPU for bf16 lengths that are multiples of 64), "
        "or force one (train and sample)",
    )


def user_errors() -> tuple[type[Exception], ...]:
    """The errors a command reports in one line (bad input, data, config or checkpoint)."""
    from genie_jax.config_loading import ConfigError
    from genie_jax.data import DataError
    from genie_jax.train.checkpoint import (
        CheckpointCorruptError,
        CheckpointMismatchError,
        CheckpointNotFoundError,
    )
    from genie_jax.train.distributed import DistributedConfigError
    from genie_jax.train.loop import TrainingDivergedError
    from genie_jax.train.pretrained import PretrainedMismatchError

    return (
        ConfigError,
        DataError,
        CheckpointNotFoundError,
        CheckpointMismatchError,
        CheckpointCorruptError,
        DistributedConfigError,
        PretrainedMismatchError,
        TrainingDivergedError,
    )


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


def _prompt_frame(args: argparse.Namespace, world) -> "np.ndarray":  # noqa: F821
    from genie_jax.data.source import open_config_split
    from genie_jax.video_io import read_image

    if args.image:
        return read_image(args.image, world.config.frame_size)
    data_dir = args.data_dir or world.config.data_dir
    source = open_config_split(world.config, "test", data_dir)
    if not 0 <= args.clip < len(source):
        raise SystemExit(f"genie play: --clip {args.clip} outside 0..{len(source) - 1}")
    print(f"prompt: frame 0 of test clip {args.clip} in {data_dir}")
    return source[args.clip]["video"][0]


def _play(args: argparse.Namespace) -> None:
    from genie_jax.play import PlaySession, interactive, parse_actions, save_rollout
    from genie_jax.world import load_world

    out = pathlib.Path(args.out)
    if out.suffix.lower() != ".gif":
        raise SystemExit(
            f"genie play: error: --out {args.out!r} must name a .gif file (the MP4 and the "
            "latest frame's PNG are written next to it)"
        )
    world = load_world(args.workdir)
    try:
        prompt_HWC = _prompt_frame(args, world)
        actions = None if args.actions is None else parse_actions(args.actions, world.num_actions)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"genie play: error: {error}") from None
    session = PlaySession(world, prompt_HWC, seed=args.seed)
    if actions is not None:
        for action in actions:
            session.step(action)
        for path in save_rollout(session, out):
            print(f"rollout ({len(session.frames)} frames): {path}")
        return
    interactive(session, out.with_suffix(".png"), out)


def _bench(args: argparse.Namespace, rest: list[str]) -> None:
    if args.kind == "train":
        _bench_train(args, rest)
        return
    from genie_jax.bench.sample import bench_sample
    from genie_jax.bench.train import emit
    from genie_jax.config_loading import parse_config_args

    config, extras = parse_config_args(rest)
    result = bench_sample(
        config,
        workdir=extras["workdir"],
        batch=args.batch,
        num_frames=args.frames,
        prompt_frames=args.prompt_frames,
        repeats=args.repeats,
        compare_full=not args.cached_only,
        attention=args.attention,
    )
    emit(result, args.out)


def _bench_train(args: argparse.Namespace, rest: list[str]) -> None:
    from genie_jax.bench import train as bench
    from genie_jax.config_loading import ConfigError, parse_config_args

    if args.model is None:
        raise ConfigError(f"--model is required; choose from {', '.join(bench.GENIE_MODELS)}")
    config, _ = parse_config_args(rest, extra_string_flags=())
    result = bench.bench_train(
        config,
        bench.genie_bench_model(config, args.model),
        steps=args.steps,
        warmup=args.warmup,
        batch_size=args.batch_size,
        matmul_size=args.matmul_size,
        attention=args.attention,
        config_args=rest,
    )
    bench.emit(result, args.out)


def _eval(args: argparse.Namespace) -> None:
    import json

    from genie_jax.eval.run import evaluate_workdir

    try:
        metrics = evaluate_workdir(
            args.workdir,
            data_dir=args.data_dir,
            split=args.split,
            step=args.step,
            num_clips=args.num_clips,
            batch_size=args.batch_size,
            seed=args.seed,
            with_fvd=not args.no_fvd,
        )
    except ValueError as error:
        raise SystemExit(f"genie eval: error: {error}") from None
    headline = {
        "delta_psnr": metrics["dynamics"]["delta_psnr"],
        "fvd": metrics["dynamics"]["fvd"],
        "tokenizer_psnr": metrics["tokenizer"]["psnr"],
        "lam_codes_used": metrics["lam"]["codes_used"],
        "latent_to_real_agreement": metrics["latent_to_real"]["agreement"],
    }
    if metrics["dynamics"]["fvd_warning"]:
        print(f"warning: {metrics['dynamics']['fvd_warning']}")
    print(f"eval outputs: {metrics['meta']['outputs']}")
    print(json.dumps(headline))


def _ckpt(args: argparse.Namespace) -> None:
    """`genie ckpt info`: the run's checkpoint steps and the newest readable one, as JSON."""
    if "jax" not in sys.modules:  # reading checkpoints to the host needs no accelerator
        os.environ["JAX_PLATFORMS"] = "cpu"
    import json

    from genie_jax.train.checkpoint_info import checkpoint_info

    print(json.dumps(checkpoint_info(args.workdir)))


def _plan(args: argparse.Namespace, rest: list[str]) -> None:
    """Per-device memory, FLOPs and the HBM verdict of a train step; no accelerator used."""
    if "jax" not in sys.modules:  # planning never needs the accelerator this host may have
        os.environ["JAX_PLATFORMS"] = "cpu"
    import json

    from genie_jax.config_loading import parse_config_args
    from genie_jax.plan import PlanError, add_xla, format_plan, make_plan, parse_mesh

    config, _ = parse_config_args(rest, extra_string_flags=())
    try:
        sizes = parse_mesh(args.mesh)
        plan = make_plan(config, args.model, sizes, args.device, batch=args.batch_size)
        if args.xla:
            from genie_jax.plan.xla_check import run_in_subprocess

            plan = add_xla(plan, run_in_subprocess(config, args.model, sizes, plan["global_batch"]))
    except PlanError as error:
        print(f"genie plan: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(plan) if args.json else format_plan(plan))


def _demo(args: argparse.Namespace) -> None:
    from genie_jax.demo import run_demo

    run_demo(pathlib.Path(args.out), episodes=args.episodes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genie", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback instead of a one-line error"
    )
    add_cli_options(parser)
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="build a dataset")
    data_kinds = data.add_subparsers(dest="dataset", required=True)
    coinrun = data_kinds.add_parser("coinrun", help="CoinRun clips (procgen, hard, random policy)")
    coinrun.add_argument("--out", required=True, help="data directory to write into")
    coinrun.add_argument("--episodes", type=int, required=True, help="episodes over all splits")
    coinrun.add_argument("--level-seeds", type=parse_seed_range, default=(0, 10_000))
    coinrun.add_argument("--workers", type=int, default=1, help="parallel episode generators")
    coinrun.add_argument("--clip-len", type=int, default=16, help="frames per clip")
    coinrun.add_argument("--max-steps", type=int, default=1000, help="cap on episode length")

    train = commands.add_parser(
        "train", help="train a model (config flags: --config F.py:variant --config.k=v)"
    )
    train.add_argument("model", choices=["tokenizer", "lam", "dynamics"])

    play = commands.add_parser("play", help="choose latent actions, see the next frames")
    play.add_argument("--workdir", required=True, help="a `genie train dynamics` workdir")
    play.add_argument("--image", help="prompt image (default: frame 0 of a test clip)")
    play.add_argument("--data-dir", help="dataset for the prompt (default: the run's data_dir)")
    play.add_argument("--clip", type=int, default=0, help="test clip whose first frame prompts")
    play.add_argument("--actions", help="scripted mode: comma-separated latent actions")
    play.add_argument(
        "--out", default="rollout.gif", help="GIF of the session (the frame goes next to it)"
    )
    play.add_argument("--seed", type=int, default=0, help="sampling seed")

    evaluate = commands.add_parser("eval", help="every metric of a trained dynamics workdir")
    evaluate.add_argument("--workdir", required=True, help="a `genie train dynamics` workdir")
    evaluate.add_argument(
        "--data-dir", "--config.data_dir", dest="data_dir", help="default: the run's data_dir"
    )
    evaluate.add_argument("--split", default="test", choices=["train", "validation", "test"])
    evaluate.add_argument("--step", type=int, help="checkpoint step (default: newest)")
    evaluate.add_argument("--num-clips", type=int, default=64)
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--seed", type=int, default=0, help="sampling and random-action seed")
    evaluate.add_argument("--no-fvd", action="store_true", help="skip FVD (I3D is slow on CPU)")

    bench = commands.add_parser(
        "bench", help="benchmarks; the last line printed is one JSON object"
    )
    bench.add_argument("kind", choices=["sample", "train"])
    bench.add_argument("--model", help="train: tokenizer, lam or dynamics")
    bench.add_argument("--batch", type=int, default=1)
    bench.add_argument("--frames", type=int, default=16, help="rollout length T")
    bench.add_argument("--prompt-frames", type=int, default=1)
    bench.add_argument("--repeats", type=int, default=2, help="timed runs after the warm-up")
    bench.add_argument(
        "--cached-only",
        action="store_true",
        help="sample: time the KV-cached rollout alone (skip the full-recompute comparison)",
    )
    add_bench_train_options(bench)
    bench.add_argument("--out", help="also write the JSON here")

    plan = commands.add_parser(
        "plan",
        help="per-device memory, FLOPs and HBM fit of a train step, before launch "
        "(config flags: --config F.py:variant --config.k=v)",
    )
    plan.add_argument("--mesh", required=True, help="e.g. data=16,fsdp=16,tensor=1")
    plan.add_argument("--device", required=True, help="v4, v5e, v5p, v6e, h100, h200, a100-40/80")
    plan.add_argument("--model", default="dynamics", choices=["dynamics", "tokenizer", "lam"])
    plan.add_argument("--batch-size", type=int, help="global batch (default: the config's)")
    plan.add_argument("--json", action="store_true", help="print one JSON object instead")
    plan.add_argument(
        "--xla", action="store_true", help="also compile the real step on simulated CPU devices"
    )

    ckpt = commands.add_parser("ckpt", help="inspect a run's checkpoints")
    ckpt_kinds = ckpt.add_subparsers(dest="ckpt_command", required=True)
    info = ckpt_kinds.add_parser(
        "info",
        help="one JSON object: steps, latest_good, config_hash, param_checksum",
    )
    info.add_argument("--workdir", required=True)

    demo = commands.add_parser(
        "demo", help="the smoke pipeline: data -> tokenizer -> LAM -> dynamics -> rollout GIF"
    )
    demo.add_argument("--out", default="runs/demo", help="where data and runs go")
    demo.add_argument("--episodes", type=int, default=24)
    for name in DEVICE_COMMANDS:
        add_cli_options(commands.choices[name], in_subcommand=True)
    return parser


def main(argv: list[str] | None = None) -> None:
    as_program = argv is None  # this process is the command (not a call from Python)
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command not in ("train", "bench", "plan") and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    tic = time.perf_counter()
    try:
        if args.command in DEVICE_COMMANDS:
            # One line for the distributed runtime's own fatal errors, too (not under --debug).
            label = f"genie {args.command}" if as_program and not args.debug else None
            initialize_from_args(args, error_label=label)
        if args.command == "data":
            _data(args)
        elif args.command == "train":
            _train(args, rest)
        elif args.command == "play":
            _play(args)
        elif args.command == "eval":
            _eval(args)
        elif args.command == "bench":
            _bench(args, rest)
        elif args.command == "plan":
            _plan(args, rest)
        elif args.command == "ckpt":
            _ckpt(args)
        elif args.command == "demo":
            _demo(args)
    except user_errors() as error:
        if args.debug:
            raise
        raise SystemExit(f"genie {args.command}: error: {error}") from None
    except Exception as error:
        if not args.debug:
            exit_if_peer_lost(error, f"genie {args.command}")
        raise
    # stderr: a benchmark's last stdout line is its JSON.
    print(f"[{time.perf_counter() - tic:.0f}s]", file=sys.stderr)


if __name__ == "__main__":
    main()
