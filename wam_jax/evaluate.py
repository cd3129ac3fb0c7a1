"""`wam eval`: the WAM of a workdir as a closed-loop BabyAI policy on held-out seeds.

Writes `W/eval/step_<N>_seeds<A>-<B>/metrics.json` (then `_t<T>` with sampled actions and
`_draw<D>` for a sampling seed other than 0, `_imagination` with the imagination policy,
`_max<K>` with episodes cut at K actions: evaluations on other seeds or draws never overwrite
each other), a copy at `W/eval/metrics.json` (the newest evaluation), `episodes.jsonl` (one
row per episode: seed, mission, success, actions and the expert bot's choice before each), and
`episode.gif` (real frames on the left, the frames the model imagined one step ahead on the
right; the first episode). Seeds default to the first `episodes` test seeds of the run's
dataset, which no training episode used.
"""

import json
import pathlib

import numpy as np

from genie_jax.data.source import open_config_split
from genie_jax.video_io import side_by_side, upscale, write_gif
from wam_jax.agent import load_agent
from wam_jax.closed_loop import BATCH_SIZE, episode_record, play_random, play_wam


def _test_seeds(config, episodes: int) -> list[int]:
    plan = open_config_split(config, "test").metadata["splits"]["test"]
    start, stop = int(plan["seed_start"]), int(plan["seed_stop"])
    if stop - start < episodes:
        raise ValueError(f"the test split has {stop - start} seeds, fewer than {episodes}")
    return list(range(start, start + episodes))


def _episode_gif(episode, path: pathlib.Path) -> pathlib.Path:
    real = np.stack(episode.frames)
    imagined = np.concatenate([real[:1], np.stack(episode.imagined)]) if episode.imagined else real
    return write_gif(path, upscale(side_by_side(real, imagined), 4), fps=3)


def evaluate_wam(
    workdir: str | pathlib.Path,
    *,
    episodes: int = 100,
    seeds: tuple[int, int] | None = None,
    step: int | None = None,
    imagine: bool = True,
    level: str | None = None,
    action_temperature: float = 0.0,
    action_source: str = "policy",
    max_steps: int | None = None,
    sample_seed: int = 0,
    batch_size: int = BATCH_SIZE,
) -> dict:
    """Plays the workdir's WAM (and random policies) on the seeds; `max_steps` cuts every
    episode there as a loss (see `play_wam`), for the WAM and the random policies alike.
    `sample_seed` picks the draw of sampled actions (and of imagined frames); `batch_size`
    (episodes side by side at most) bounds memory and leaves the draws as they are."""
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be a positive number of actions, got {max_steps}")
    if sample_seed < 0:
        raise ValueError(f"sample_seed must be 0 or more, got {sample_seed}")
    workdir = pathlib.Path(workdir)
    agent = load_agent(
        workdir, step=step, action_temperature=action_temperature, action_source=action_source
    )
    config = agent.config
    level = level or config.level
    if seeds is None:
        seed_list = _test_seeds(config, episodes)
    else:
        seed_list = list(range(seeds[0], seeds[1]))[:episodes]
    metrics, played = play_wam(
        agent,
        level,
        seed_list,
        imagine=imagine,
        seed=sample_seed,
        max_steps=max_steps,
        batch_size=batch_size,
    )
    metrics["random_policy"] = play_random(level, seed_list, config.frame_size, max_steps=max_steps)
    loaded_step = agent.step
    # Each seed range, sampled-action draw and imagination-policy evaluation gets a
    # directory of its own next to the argmax policy-head one.
    suffix = f"_seeds{seed_list[0]}-{seed_list[-1] + 1}"
    if agent.action_temperature > 0:
        suffix += f"_t{agent.action_temperature:g}"
    if sample_seed:
        suffix += f"_draw{sample_seed}"
    if agent.action_source != "policy":
        suffix += f"_{agent.action_source}"
    if max_steps is not None:
        suffix += f"_max{max_steps}"
    out_dir = workdir / "eval" / f"step_{loaded_step}{suffix}"
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = [str(out_dir / "metrics.json")]
    records = "".join(json.dumps(episode_record(ep)) + "\n" for ep in played)
    (out_dir / "episodes.jsonl").write_text(records)
    outputs.append(str(out_dir / "episodes.jsonl"))
    if imagine:
        outputs.append(str(_episode_gif(played[0], out_dir / "episode.gif")))
    section = config.wam
    metrics["meta"] = {
        "workdir": str(workdir),
        "step": loaded_step,
        "level": level,
        "seeds": [seed_list[0], seed_list[-1] + 1],
        "train_seed": int(config.seed),
        "label_fraction": 0.0 if section.stage == "pretrain" else section.label_fraction,
        "behaviour_cloning": bool(section.behaviour_cloning),
        "stage": section.stage,
        # The `wam label` file the run read where real actions were hidden ("": none).
        "named_actions": section.get("named_actions", ""),
        # The on-policy (DAgger) build the run read beside its data ("": none).
        "on_policy_data_dir": section.get("on_policy_data_dir", ""),
        "sampling": {
            "steps": agent.sampling.steps,
            "argmax": agent.sampling.logit_temperature == 0,
        },
        "action_temperature": agent.action_temperature,
        "sample_seed": sample_seed,
        "action_source": agent.action_source,
        "max_steps": max_steps,
        "outputs": outputs,
    }
    text = json.dumps(metrics, indent=2) + "\n"
    (out_dir / "metrics.json").write_text(text)
    (workdir / "eval" / "metrics.json").write_text(text)
    return metrics
