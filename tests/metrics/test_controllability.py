"""ΔtPSNR on stub world models whose controllability is known."""

import jax
import numpy as np
import pytest

from genie_jax.metrics import controllability_psnr, psnr_per_frame, summarize_controllability

B, T, S, A = 6, 8, 16, 4


def _clips(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, (B, T, S, S, 3), dtype=np.uint8)
    actions = rng.integers(0, A, (B, T - 1)).astype(np.int32)
    return video, actions


class ActionBlindWorld:
    """Generates noisy copies of the real frames whatever the actions: no control at all."""

    num_actions = A

    def __init__(self, video, actions):
        self.video, self.actions = video, actions

    def latent_actions(self, video_BTHWC):
        return self.actions

    def rollout_video(self, prompt, actions_BA, rng, num_frames):
        noise = np.asarray(jax.random.normal(rng, self.video.shape)) * 40.0
        return np.clip(self.video.astype(np.float64) + noise, 0, 255).astype(np.uint8)


class OracleWorld(ActionBlindWorld):
    """Copies the true next frame only when given the true action; otherwise repeats the
    previous generated frame."""

    def rollout_video(self, prompt, actions_BA, rng, num_frames):
        out = self.video.copy()
        for t in range(1, num_frames):
            wrong = actions_BA[:, t - 1] != self.actions[:, t - 1]
            out[wrong, t] = out[wrong, t - 1]
        return out


def test_action_blind_world_has_zero_delta_psnr():
    video, actions = _clips()
    world = ActionBlindWorld(video, actions)
    out = controllability_psnr(world, video, jax.random.key(0))
    result = summarize_controllability(out["psnr_inferred"], out["psnr_random"])
    assert result["delta_psnr"] == pytest.approx(0.0, abs=1e-9)  # same sampling rng
    assert len(result["psnr_inferred_by_t"]) == T - 1
    assert result["num_clips"] == B


def test_oracle_world_has_large_delta_psnr():
    video, actions = _clips()
    world = OracleWorld(video, actions)
    out = controllability_psnr(world, video, jax.random.key(0))
    result = summarize_controllability(out["psnr_inferred"], out["psnr_random"])
    assert result["psnr_inferred_by_t"][3] == pytest.approx(100.0)  # exact copies
    assert result["delta_psnr"] > 20.0  # random actions hit the true one 1 time in 4
    assert result["delta_psnr_t"] == 4
    # The random rollout degrades over time as wrong actions accumulate.
    assert result["psnr_random_by_t"][-1] <= result["psnr_random_by_t"][0] + 1e-9


def test_psnr_per_frame_matches_definition():
    video, _ = _clips()
    noisy = np.clip(video.astype(np.int32) + 10, 0, 255).astype(np.uint8)
    got = psnr_per_frame(video, noisy)
    mse = np.mean((video / 255.0 - noisy / 255.0) ** 2, axis=(2, 3, 4))
    np.testing.assert_allclose(got, 10 * np.log10(1.0 / mse), rtol=1e-12)
    assert got.shape == (B, T)
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr_per_frame(video, noisy[:, :-1])


def test_delta_psnr_needs_frames_past_t():
    with pytest.raises(ValueError, match="t=4"):
        summarize_controllability(np.zeros((2, 4)), np.zeros((2, 4)))


def test_random_actions_can_be_restricted_to_the_codes_in_use():
    video, actions = _clips()
    seen = []

    class Recorder(OracleWorld):
        def rollout_video(self, prompt, actions_BA, rng, num_frames):
            seen.append(np.asarray(actions_BA))
            return super().rollout_video(prompt, actions_BA, rng, num_frames)

    world = Recorder(video, actions)
    controllability_psnr(world, video, jax.random.key(0), random_codes=np.array([2]))
    assert (seen[1] == 2).all()  # the random rollout only drew code 2
    controllability_psnr(world, video, jax.random.key(0), random_codes=np.array([1, 3]))
    assert set(np.unique(seen[3])) == {1, 3}
    with pytest.raises(ValueError, match="subset"):
        controllability_psnr(world, video, jax.random.key(0), random_codes=np.array([A]))
