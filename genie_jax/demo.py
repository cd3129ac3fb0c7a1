"""`genie demo`: the CoinRun pipeline at smoke scale, printing where each artifact went.

data -> tokenizer -> LAM -> dynamics -> a rollout GIF: for a few test clips, the real clip next
to Genie's rollout from its first frame, driven by the latent actions the LAM infers from the
real clip.
"""

import pathlib

import jax
import numpy as np

from genie_jax.config_loading import load_config
from genie_jax.data import build_coinrun

CONFIG = pathlib.Path(__file__).resolve().parent.parent / "experiments/configs/coinrun.py"
ROLLOUT_CLIPS = 4


def write_rollout_gif(dynamics_dir: pathlib.Path, out: pathlib.Path, *, clips: int) -> pathlib.Path:
    """Real test clips (left) next to rollouts from their first frame (right), one row each."""
    from genie_jax.data.source import open_split
    from genie_jax.video_io import side_by_side, upscale, write_gif
    from genie_jax.world import load_world

    world = load_world(dynamics_dir)
    config = world.config
    source = open_split(
        config.data_dir, "test", clip_len=config.clip_len, frame_size=config.frame_size
    )
    # Spread over the split: neighbouring clips often come from one episode.
    picks = np.unique(np.linspace(0, len(source) - 1, min(clips, len(source))).astype(int))
    real_BTHWC = np.stack([source[int(i)]["video"] for i in picks])
    actions_BA = world.latent_actions(real_BTHWC)
    generated_BTHWC = world.rollout_video(
        real_BTHWC[:, :1], actions_BA, jax.random.key(config.seed), real_BTHWC.shape[1]
    )
    rows = [side_by_side(real, fake) for real, fake in zip(real_BTHWC, generated_BTHWC)]
    return write_gif(out, upscale(np.concatenate(rows, axis=1), 2))


def run_demo(out: pathlib.Path, *, episodes: int = 24) -> dict[str, pathlib.Path]:
    from genie_jax.train.loop import train

    out = out.absolute()
    data_dir = out / "data"
    print(f"[1/5] CoinRun data -> {data_dir}")
    build_coinrun(data_dir, episodes=episodes, clip_len=16, workers=2, max_steps=400)
    workdirs = {name: out / name for name in ("tokenizer", "lam", "dynamics")}
    config = load_config(
        f"{CONFIG}:smoke",
        {
            "data_dir": str(data_dir),
            "tokenizer_workdir": str(workdirs["tokenizer"]),
            "lam_workdir": str(workdirs["lam"]),
        },
    )
    summaries = {}
    for i, name in enumerate(("tokenizer", "lam", "dynamics"), start=2):
        print(f"[{i}/5] {name} -> {workdirs[name]}")
        summaries[name] = train(config, workdirs[name], name)
        print(f"{name} validation: {summaries[name].get('eval')}")
    gif = out / "rollout.gif"
    print(f"[5/5] rollout GIF -> {gif}")
    write_rollout_gif(workdirs["dynamics"], gif, clips=ROLLOUT_CLIPS)
    artifacts = {"data": data_dir}
    for name, workdir in workdirs.items():
        artifacts[f"{name} checkpoints"] = pathlib.Path(summaries[name]["checkpoint_dir"])
        artifacts[f"{name} metrics"] = workdir / "metrics.jsonl"
    artifacts["tensorboard"] = out  # one run per subdirectory: tensorboard --logdir OUT
    artifacts["rollout GIF (left real, right generated)"] = gif
    for name, path in artifacts.items():
        print(f"  {name}: {path}")
    print(f"play: genie play --workdir {workdirs['dynamics']}")
    return artifacts
