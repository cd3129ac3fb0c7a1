"""`genie demo`: the CoinRun pipeline at smoke scale, printing where each artifact went.

data -> tokenizer now; the LAM, dynamics model and a rollout GIF join as they land (#3, #4).
"""

import pathlib

from genie_jax.config_loading import load_config
from genie_jax.data import build_coinrun

CONFIG = pathlib.Path(__file__).resolve().parent.parent / "experiments/configs/coinrun.py"


def run_demo(out: pathlib.Path, *, episodes: int = 24) -> dict[str, pathlib.Path]:
    from genie_jax.train.loop import train

    out = out.absolute()
    data_dir = out / "data"
    print(f"[1/2] CoinRun data -> {data_dir}")
    build_coinrun(data_dir, episodes=episodes, clip_len=16, workers=2, max_steps=400)
    config = load_config(f"{CONFIG}:smoke", {"data_dir": str(data_dir)})
    tokenizer_dir = out / "tokenizer"
    print(f"[2/2] tokenizer -> {tokenizer_dir}")
    summary = train(config, tokenizer_dir, "tokenizer")
    print(f"tokenizer validation: {summary.get('eval')}")
    artifacts = {
        "data": data_dir,
        "tokenizer checkpoints": pathlib.Path(summary["checkpoint_dir"]),
        "tokenizer metrics": tokenizer_dir / "metrics.jsonl",
        "tensorboard": tokenizer_dir / "tensorboard",
    }
    for name, path in artifacts.items():
        print(f"  {name}: {path}")
    return artifacts
