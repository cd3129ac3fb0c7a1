"""`genie eval`: every metric of a trained Genie from its dynamics workdir.

Writes `W/eval/step_<N>/{metrics.json, psnr_by_t.png, codebook_usage.png, rollouts.gif}` and
copies `metrics.json` to `W/eval/metrics.json` (the latest evaluation). Keys:

  tokenizer       psnr, ssim (reconstruction), codebook_usage, codebook_perplexity
  lam             psnr (next-frame prediction), codes_used, code_counts
  dynamics        delta_psnr (t=4), psnr_inferred_by_t, psnr_random_by_t (t=1..T-1),
                  delta_psnr_used_codes (random actions only among the codes the LAM used;
                  with a warning and its PSNR(t) curve when that is fewer than A), fvd,
                  fvd_num_clips, fvd_warning, token_accuracy (argmax accuracy on the last
                  frame, fully masked, given the real earlier frames and inferred actions)
  latent_to_real  agreement, majority_baseline, labels_used, test_transitions, map
  meta            checkpoint step, split, clips, seeds, protocol choices
"""

import json
import pathlib
import shutil

import jax
import numpy as np
import tqdm

from genie_jax.data.source import open_config_split
from genie_jax.eval.latent_to_real import latent_to_real_agreement
from genie_jax.eval.plots import plot_codebook_usage, plot_psnr_by_t
from genie_jax.metrics import controllability_psnr, psnr, ssim, summarize_controllability
from genie_jax.metrics.controllability import HEADLINE_T
from genie_jax.metrics.fvd import MIN_FRAMES, fvd
from genie_jax.video_io import side_by_side, upscale, write_gif
from genie_jax.world import World, load_world


def _perplexity(counts: np.ndarray) -> float:
    probs = counts / max(counts.sum(), 1)
    nonzero = probs[probs > 0]
    return float(np.exp(-np.sum(nonzero * np.log(nonzero))))


def _batches(source, num_clips: int, batch_size: int):
    for start in range(0, num_clips, batch_size):
        items = [source[i] for i in range(start, min(start + batch_size, num_clips))]
        yield np.stack([it["video"] for it in items]), np.stack([it["actions"] for it in items])


def _labelled_transitions(world: World, data_dir, config, max_labels: int, batch_size: int):
    """(latent, real) actions of the first `max_labels` transitions of the train split."""
    source = open_config_split(config, "train", data_dir)
    latent, real = [], []
    per_clip = config.clip_len - 1
    clips = min(len(source), -(-max_labels // per_clip))
    for video, actions in _batches(source, clips, batch_size):
        latent.append(world.latent_actions(video).ravel())
        real.append(actions[:, :-1].ravel())
    return np.concatenate(latent)[:max_labels], np.concatenate(real)[:max_labels]


def evaluate_workdir(
    workdir: str | pathlib.Path,
    *,
    data_dir: str | None = None,
    split: str = "test",
    step: int | None = None,
    num_clips: int = 64,
    batch_size: int = 8,
    seed: int = 0,
    with_fvd: bool = True,
    max_labels: int = 200,
) -> dict:
    workdir = pathlib.Path(workdir)
    world = load_world(workdir, step=step)
    config = world.config
    data_dir = data_dir or config.data_dir
    source = open_config_split(config, split, data_dir)
    num_clips = min(num_clips, len(source))
    if num_clips == 0:
        raise ValueError(f"the {split} split of {data_dir} is empty")
    vocab = world.model.tokenizer_config.codebook_size
    token_counts = np.zeros(vocab, np.int64)
    action_counts = np.zeros(world.num_actions, np.int64)
    sums = {"tok_psnr": 0.0, "tok_ssim": 0.0, "lam_psnr": 0.0, "token_acc": 0.0}
    psnr_inferred, psnr_random, real_all, inferred_all = [], [], [], []
    test_latent, test_real = [], []
    first = None
    key = jax.random.key(seed)
    batches = list(range(0, num_clips, batch_size))
    for index, (video, actions) in enumerate(
        tqdm.tqdm(_batches(source, num_clips, batch_size), total=len(batches), desc="eval")
    ):
        weight = video.shape[0] / num_clips
        unit = video.astype(np.float32) / 255.0
        tokens = world.tokenize(video)
        recon = world.detokenize(tokens).astype(np.float32) / 255.0
        sums["tok_psnr"] += weight * float(psnr(unit, recon))
        sums["tok_ssim"] += weight * float(ssim(unit, recon))
        token_counts += np.bincount(np.asarray(tokens).ravel(), minlength=vocab)
        sums["lam_psnr"] += weight * float(psnr(unit[:, 1:], world.lam_predict(video)))
        latent = world.latent_actions(video)
        action_counts += np.bincount(latent.ravel(), minlength=world.num_actions)
        test_latent.append(latent.ravel())
        test_real.append(actions[:, :-1].ravel())
        logits, last_tokens = world.next_frame_logits(video)
        sums["token_acc"] += weight * float(np.mean(np.argmax(logits, -1) == last_tokens))
        rollouts = controllability_psnr(world, video, jax.random.fold_in(key, index))
        psnr_inferred.append(rollouts["psnr_inferred"])
        psnr_random.append(rollouts["psnr_random"])
        real_all.append(video)
        inferred_all.append(rollouts["inferred_video"])
        if first is None:
            first = (video, rollouts["inferred_video"], rollouts["random_video"])

    dynamics = summarize_controllability(np.concatenate(psnr_inferred), np.concatenate(psnr_random))
    dynamics.pop("num_clips")
    if with_fvd and config.clip_len >= MIN_FRAMES:
        dynamics.update(fvd(np.concatenate(real_all), np.concatenate(inferred_all)))
    else:
        reason = "disabled" if not with_fvd else f"clips shorter than {MIN_FRAMES} frames"
        dynamics.update(fvd=None, fvd_num_clips=0, fvd_warning=f"FVD not computed: {reason}")
    dynamics["token_accuracy"] = sums["token_acc"]
    used_codes = np.flatnonzero(action_counts)
    dynamics["delta_psnr_used_codes"] = dynamics["delta_psnr"]
    if used_codes.size < world.num_actions:
        # Random actions among codes the LAM never emits feed the dynamics model embeddings it
        # was not trained on; the comparison restricted to the codes in use isolates control.
        restricted = []
        for index, (video, _) in enumerate(_batches(source, num_clips, batch_size)):
            out = controllability_psnr(
                world, video, jax.random.fold_in(key, index), random_codes=used_codes
            )
            restricted.append(out["psnr_random"])
        used = summarize_controllability(np.concatenate(psnr_inferred), np.concatenate(restricted))
        dynamics["delta_psnr_used_codes"] = used["delta_psnr"]
        dynamics["psnr_random_used_codes_by_t"] = used["psnr_random_by_t"]
        dynamics["delta_psnr_warning"] = (
            f"the LAM used {used_codes.size} of {world.num_actions} codes on these clips; "
            "delta_psnr draws random actions from all codes, delta_psnr_used_codes only from "
            "the used ones"
        )
    fit_latent, fit_real = _labelled_transitions(world, data_dir, config, max_labels, batch_size)
    metrics = {
        "tokenizer": {
            "psnr": sums["tok_psnr"],
            "ssim": sums["tok_ssim"],
            "codebook_usage": float(np.mean(token_counts > 0)),
            "codebook_perplexity": _perplexity(token_counts),
        },
        "lam": {
            "psnr": sums["lam_psnr"],
            "codes_used": int(np.sum(action_counts > 0)),
            "code_counts": action_counts.tolist(),
        },
        "dynamics": dynamics,
        "latent_to_real": latent_to_real_agreement(
            fit_latent,
            fit_real,
            np.concatenate(test_latent),
            np.concatenate(test_real),
            num_latent=world.num_actions,
            max_labels=max_labels,
        ),
        "meta": {
            "workdir": str(workdir.absolute()),
            "checkpoint_step": world.step,
            "data_dir": str(data_dir),
            "split": split,
            "num_clips": num_clips,
            "clip_len": config.clip_len,
            "seed": seed,
            "sampling": world.sampler.sampling.__dict__,
            "protocol": (
                "ΔtPSNR: 1 prompt frame (x_0); t = frame index in the clip, headline "
                f"t={HEADLINE_T}; PSNR per clip and frame on [0, 1] pixels, mean over clips; "
                "random actions uniform over the LAM codes at every step; same sampling rng "
                "for both rollouts. Latent->real: majority vote per code from the first "
                f"{max_labels} train transitions; agreement on the evaluated clips."
            ),
        },
    }
    out = workdir / "eval" / f"step_{world.step}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    shutil.copyfile(out / "metrics.json", workdir / "eval" / "metrics.json")
    plot_psnr_by_t(
        out / "psnr_by_t.png",
        dynamics["psnr_inferred_by_t"],
        dynamics["psnr_random_by_t"],
        t=HEADLINE_T,
    )
    plot_codebook_usage(out / "codebook_usage.png", token_counts, action_counts)
    real, inferred, random = first
    rows = [side_by_side(r, i, x) for r, i, x in zip(real[:4], inferred[:4], random[:4])]
    write_gif(out / "rollouts.gif", upscale(np.concatenate(rows, axis=1), 2))
    metrics["meta"]["outputs"] = str(out)
    return metrics
