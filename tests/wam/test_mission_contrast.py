"""Mission contrast: windows read under another window's mission learn only that PICKUP is
wrong where they faced their own mission's object."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genie_jax.train.state import TrainState, freeze_groups
from tests.wam.tiny import ACTIONS, FRAMES, TOKENIZER, tiny_batch, tiny_params, tiny_system
from wam_jax.data.babyai_env import AHEAD_FREE, AHEAD_NAMED, AHEAD_OBJECT, AHEAD_WALL, PICKUP
from wam_jax.data.vocab import Vocabulary
from wam_jax.mission_contrast import (
    ahead_under_contrast,
    contrast_windows,
    names_another_object,
    pickup_unlikelihood,
)
from wam_jax.steps import wam_losses, wam_train_step
from wam_jax.system import NO_LABEL

N = TOKENIZER.num_tokens
STEPS = 100  # optimizer steps of the tiny model in the learning test
MISSIONS = [
    "pick up the red ball",
    "pick up the blue ball",  # another colour: another object
    "pick up the blue ball in front of you",  # the same colour and type: maybe the same
    "pick up the ball",  # no colour: maybe the blue ball
    "pick up a green box",  # another type
    "pick up the green box on your left",  # the same colour and type again
]


def test_names_another_object_compares_the_type_and_both_colours():
    vocab = Vocabulary.from_missions(MISSIONS)
    colors, types = vocab.object_word_ids()
    assert len(colors) == 3 and len(types) == 2  # red, blue, green; ball, box
    words = jnp.asarray(np.stack([vocab.encode(m, 10) for m in MISSIONS]))
    other = jnp.roll(words, 1, axis=0)  # row b reads row b - 1's mission
    # red ball vs green box; blue ball vs red ball; blue ball (front) vs blue ball; ball vs
    # blue ball; green box vs ball; green box (left) vs green box.
    np.testing.assert_array_equal(
        names_another_object(words, other, colors, types),
        [True, True, False, False, True, False],
    )
    # Drawing every window swaps exactly those, with the rolled words; drawing none, none.
    read, swapped = contrast_windows(jax.random.key(0), words, 1.0, colors, types)
    np.testing.assert_array_equal(swapped, [True, True, False, False, True, False])
    np.testing.assert_array_equal(read, np.where(swapped[:, None], other, words))
    read, swapped = contrast_windows(jax.random.key(0), words, 0.0, colors, types)
    assert not np.any(swapped) and np.array_equal(read, words)
    # A vocabulary without type words has nothing to compare.
    assert Vocabulary.from_missions(["go to the red one"]).object_word_ids()[1] == ()


def test_ahead_under_contrast_names_nothing_the_old_mission_named():
    ahead = jnp.asarray([[AHEAD_FREE, AHEAD_WALL, AHEAD_OBJECT, AHEAD_NAMED]] * 2)
    said = ahead_under_contrast(ahead, jnp.asarray([True, False]))
    np.testing.assert_array_equal(said[0], [AHEAD_FREE, AHEAD_WALL, NO_LABEL, AHEAD_OBJECT])
    np.testing.assert_array_equal(said[1], ahead[1])


def test_pickup_unlikelihood_matches_minus_log_one_minus_p_and_stays_finite():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, ACTIONS)).astype(np.float32)
    weight = np.array([[True, False, True], [False, False, True]])
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    by_hand = -np.log(1 - p[..., PICKUP])[weight].mean()
    out = pickup_unlikelihood(jnp.asarray(logits), jnp.asarray(weight))
    np.testing.assert_allclose(out["loss"], by_hand, rtol=1e-5)
    np.testing.assert_allclose(out["pickup_prob"], p[..., PICKUP][weight].mean(), rtol=1e-5)
    assert out["count"] == 3
    # A policy sure of PICKUP: a large, finite loss and gradient.
    sure = np.zeros((1, 1, ACTIONS), np.float32)
    sure[..., PICKUP] = 60.0
    grad = jax.grad(lambda x: pickup_unlikelihood(x, jnp.ones((1, 1), bool))["loss"])(
        jnp.asarray(sure)
    )
    assert np.all(np.isfinite(grad)) and grad[0, 0, PICKUP] > 0.5


def _synthetic(seed: int = 0):
    """Logits and labels of 2 windows for `wam_losses` without a model."""
    rng = np.random.default_rng(seed)
    batch, vocab = 2, TOKENIZER.codebook_size
    logits = {
        "video": rng.normal(size=(batch, FRAMES, N, vocab)),
        "actions": rng.normal(size=(batch, FRAMES, ACTIONS)),
        "next_actions": rng.normal(size=(batch, FRAMES, ACTIONS)),
        "targets": rng.normal(size=(batch, FRAMES, N)),
        "ahead": rng.normal(size=(batch, FRAMES, 4)),
    }
    logits = {k: jnp.asarray(v, jnp.float32) for k, v in logits.items()}
    aux = {"tokens": jnp.asarray(rng.integers(0, vocab, (batch, FRAMES, N)))}
    actions = jnp.asarray(rng.integers(0, ACTIONS, (batch, FRAMES)), jnp.int32)
    length = jnp.asarray([FRAMES, FRAMES], jnp.int32)
    # The last frame hidden (the video term's); frames 0..3 shown whole: policy positions.
    video_hidden = jnp.zeros((batch, FRAMES, N), bool).at[:, -1].set(True)
    slots_hidden = jnp.ones((batch, FRAMES), bool)
    targets = jnp.zeros((batch, FRAMES, N), bool).at[:, :, 0].set(True)
    ahead = jnp.asarray([[AHEAD_FREE, AHEAD_NAMED, AHEAD_OBJECT, AHEAD_NAMED, AHEAD_WALL]] * 2)
    return logits, aux, actions, length, video_hidden, slots_hidden, targets, ahead


def _losses(logits, swapped, weight=1.0):
    _, aux, actions, length, video_hidden, slots_hidden, targets, ahead = _synthetic()
    return wam_losses(
        logits,
        aux,
        actions,
        length,
        video_hidden,
        slots_hidden,
        action_loss_weight=1.0,
        targets_BTN=targets,
        target_loss_weight=1.0,
        ahead_BT=ahead,
        ahead_loss_weight=1.0,
        swapped_B=swapped,
        contrast_weight=weight,
    )


def test_a_swapped_window_trains_only_the_mission_independent_terms_and_the_contrast():
    logits, *_ = _synthetic()
    swapped = jnp.asarray([True, False])
    grads = jax.grad(lambda lg: _losses(lg, swapped)[0])(logits)
    # Window 0's policy: only its frames facing the named object (1 and 3), by the contrast.
    moved = np.abs(np.asarray(grads["next_actions"][0])).sum(-1) > 0
    np.testing.assert_array_equal(moved, [False, True, False, True, False])
    # Where it faced the named object, the contrast pushes PICKUP down, nothing else.
    assert np.all(np.asarray(grads["next_actions"][0, [1, 3], PICKUP]) > 0)
    # Its target head learns nothing; its ahead head all but the unnamed object (frame 2).
    assert not np.any(grads["targets"][0]) and np.any(grads["targets"][1])
    ahead_moved = np.abs(np.asarray(grads["ahead"][0])).sum(-1) > 0
    np.testing.assert_array_equal(ahead_moved, [True, True, False, True, False])
    # Its video and inverse-dynamics terms stay.
    assert np.any(grads["video"][0]) and np.any(grads["actions"][0])
    # Window 1, not swapped, learns the policy at every shown frame.
    policy_moved = np.abs(np.asarray(grads["next_actions"][1])).sum(-1) > 0
    np.testing.assert_array_equal(policy_moved, [True, True, True, True, False])
    loss, metrics = _losses(logits, swapped)
    p = jax.nn.softmax(logits["next_actions"][0, [1, 3]])[:, PICKUP]
    np.testing.assert_allclose(metrics["contrast_pickup_prob"], np.mean(p), rtol=1e-5)
    assert metrics["contrast_examples"] == 2 and metrics["contrast_windows"] == 1
    # The contrast's weight scales its term alone.
    by_hand = -np.mean(np.log(1 - np.asarray(p)))
    np.testing.assert_allclose(
        _losses(logits, swapped, weight=3.0)[0] - loss, 2.0 * by_hand, rtol=1e-4
    )


def test_nothing_swapped_is_the_loss_without_the_contrast():
    logits, aux, actions, length, video_hidden, slots_hidden, targets, ahead = _synthetic()
    plain, plain_metrics = wam_losses(
        logits,
        aux,
        actions,
        length,
        video_hidden,
        slots_hidden,
        action_loss_weight=1.0,
        targets_BTN=targets,
        target_loss_weight=1.0,
        ahead_BT=ahead,
        ahead_loss_weight=1.0,
    )
    none, metrics = _losses(logits, jnp.asarray([False, False]))
    np.testing.assert_allclose(none, plain, rtol=1e-6)
    assert metrics["contrast_examples"] == 0
    assert metrics["policy_examples"] == plain_metrics["policy_examples"]


def _contrast_state(batch):
    system = tiny_system(ahead_head=True)
    params = tiny_params(system, batch)
    tx = freeze_groups(optax.adam(3e-3), ("tokenizer",))
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        model_state={},
        apply_fn=system.apply,
        tx=tx,
    )
    return state


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_train_steps_with_contrast_lower_pickup_where_the_mission_names_another_object(share):
    """Every window faces its mission's object at every frame and every label is PICKUP:
    without the contrast the policy learns PICKUP everywhere; with it, PICKUP falls under the
    other mission and stays under the own one (about half of the windows read the other
    mission at each step, drawn afresh; the rule is an interaction of frames and words: each
    video's PICKUP is right under one of the two missions)."""
    batch = tiny_batch(batch=4)
    batch["words"] = np.array([[1, 2, 0], [1, 3, 0], [1, 2, 0], [1, 3, 0]], np.int32)  # 2 objects
    batch["actions"] = np.where(batch["actions"] >= 0, PICKUP, NO_LABEL).astype(np.int32)
    batch["ahead"] = np.full(batch["actions"].shape, AHEAD_NAMED, np.int32)
    object_words = ((), (2, 3))  # two object types, ids 2 and 3

    step = jax.jit(
        lambda s, b: wam_train_step(
            s,
            b,
            jax.random.key(0),
            num_tokens=N,
            mode_probs=(0.0, 1.0, 0.0),
            min_mask_rate=0.5,
            max_mask_rate=1.0,
            action_loss_weight=1.0,
            ahead_loss_weight=1.0,
            mission_contrast_share=share,
            mission_contrast_weight=1.0,
            object_word_ids=object_words,
        )
    )
    state = _contrast_state(batch)
    for _ in range(STEPS):
        state, metrics = step(state, batch)
    system = tiny_system(ahead_head=True)
    shown = jnp.zeros(batch["actions"].shape + (N,), bool)
    slots = jnp.zeros(batch["actions"].shape, bool)

    def pickup_prob(words):
        inputs = dict(batch, words=words)
        logits, _ = system.apply(
            {"params": state.params},
            jnp.asarray(inputs["words"]),
            jnp.asarray(inputs["video"], jnp.float32) / 255.0,
            jnp.asarray(inputs["actions"]),
            jnp.asarray(inputs["length"]),
            shown,
            slots,
        )
        return float(jnp.mean(jax.nn.softmax(logits["next_actions"][:, 0])[:, PICKUP]))

    own, other = pickup_prob(batch["words"]), pickup_prob(np.roll(batch["words"], 1, axis=0))
    if share == 0.0:
        assert "contrast_examples" not in metrics
        assert own > 0.9 and other > 0.9  # "pick up what you face", whatever the mission
    else:
        assert metrics["contrast_windows"] > 0
        # The same frames: PICKUP now follows the mission (0.98 against 0.005 when written;
        # both 0.998 without the contrast).
        assert own > 0.8 and other < 0.1, (own, other)
