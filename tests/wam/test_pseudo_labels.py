"""Pseudo-labels: the WAM's own inverse-dynamics query names the actions of unlabelled clips,
and the policy head learns the confident ones."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genie_jax.train.state import TrainState, freeze_groups
from tests.wam.tiny import (
    ACTIONS,
    FRAMES,
    TOKENIZER,
    tiny_apply,
    tiny_batch,
    tiny_losses,
    tiny_params,
    tiny_system,
)
from wam_jax.pseudo_labels import inverse_query_masks, pseudo_actions
from wam_jax.steps import wam_train_step
from wam_jax.system import NO_LABEL

N = TOKENIZER.num_tokens


def test_pseudo_actions_name_confident_unknown_transitions_only():
    """Row t + 1 of the slot logits names a_t; known actions, the last frame, padding and
    choices below the threshold get NO_LABEL."""
    logits_BTR = np.zeros((2, FRAMES, ACTIONS), np.float32)
    for t in range(1, FRAMES):
        logits_BTR[:, t, t % ACTIONS] = 10.0  # a_{t-1} = t, confidently
    logits_BTR[1, 2] = 0.0  # clip 1: a_1 uniform over the actions
    actions_BT = np.full((2, FRAMES), NO_LABEL, np.int32)
    actions_BT[0, 0] = 5  # clip 0: a_0 known
    length_B = np.array([FRAMES, 3], np.int32)
    named = np.asarray(pseudo_actions(logits_BTR, actions_BT, length_B, threshold=0.9))
    expected = np.full((2, FRAMES), NO_LABEL)
    expected[0, 1 : FRAMES - 1] = np.arange(2, FRAMES) % ACTIONS  # a_0 known, a_4 has no o_5
    expected[1, 0] = 1  # a_1 uncertain, o_3 is past the episode
    np.testing.assert_array_equal(named, expected)
    # Threshold 0 keeps the uncertain one too (argmax of a uniform row: action 0).
    loose = np.asarray(pseudo_actions(logits_BTR, actions_BT, length_B, threshold=0.0))
    assert loose[1, 1] == 0 and loose[1, 2] == NO_LABEL


def test_pseudo_policy_loss_counts_unknown_shown_frames_and_trains_the_policy_head_only():
    system = tiny_system()
    batch = tiny_batch(labelled=False)
    params = tiny_params(system, batch)
    video_hidden = jnp.zeros((2, FRAMES, N), bool).at[0, 3, 1].set(True)
    slots_hidden = jnp.zeros((2, FRAMES), bool)
    pseudo_BT = jnp.asarray(np.tile(np.arange(FRAMES) % ACTIONS, (2, 1)), jnp.int32)

    def losses(p, weight, video_weight=1.0):
        return tiny_losses(
            system,
            p,
            batch,
            video_hidden,
            slots_hidden,
            action_loss_weight=1.0,
            video_loss_weight=video_weight,
            pseudo_actions_BT=pseudo_BT,
            pseudo_label_weight=weight,
        )

    loss, m = losses(params, 0.5)
    # Clip 0: frames 0..2 whole (frame 3 has a hidden token); clip 1 (length 3): all frames.
    counted = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4)]
    assert m["pseudo_examples"] == len(counted) and m["policy_examples"] == 0
    logits, _ = tiny_apply(system, params, batch, video_hidden, slots_hidden)
    logp = jax.nn.log_softmax(logits["next_actions"])
    by_hand = -np.mean([logp[b, t, int(pseudo_BT[b, t])] for b, t in counted])
    np.testing.assert_allclose(m["pseudo_policy_ce"], by_hand, rtol=1e-5)
    np.testing.assert_allclose(loss, m["video_ce"] + 0.5 * by_hand, rtol=1e-5)
    grads = jax.grad(lambda p: losses(p, 1.0, video_weight=0.0)[0])(params)
    assert np.abs(grads["wam"]["policy_head"]["kernel"]).max() > 0
    assert not np.any(grads["wam"]["action_head"]["kernel"])
    assert not np.any(grads["wam"]["video_head"]["kernel"])


def _one_step(batch, **pseudo):
    system = tiny_system()
    params = tiny_params(system, batch)
    tx = freeze_groups(optax.sgd(1.0), ("tokenizer",))
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        model_state={},
        apply_fn=system.apply,
        tx=tx,
    )
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
            **pseudo,
        )
    )
    new_state, metrics = step(state, batch)
    return params, new_state.params, metrics


def test_train_step_pseudo_labels_unlabelled_clips_from_its_inverse_query():
    """Off, an unlabelled batch leaves the policy head where it was; on (threshold 0: every
    transition named), the policy head learns the inverse query's names."""
    batch = tiny_batch(labelled=False)
    before, after, metrics = _one_step(batch)
    np.testing.assert_array_equal(
        before["wam"]["policy_head"]["kernel"], after["wam"]["policy_head"]["kernel"]
    )
    assert "pseudo_examples" not in metrics
    before, after, metrics = _one_step(batch, pseudo_label_weight=1.0, pseudo_label_threshold=0.0)
    assert metrics["pseudo_examples"] >= 2  # frame 0 of each clip is always shown
    assert (
        np.abs(before["wam"]["policy_head"]["kernel"] - after["wam"]["policy_head"]["kernel"]).max()
        > 0
    )
    # The names are the inverse query's argmax under the parameters before the step.
    system = tiny_system()
    logits, _ = tiny_apply(
        system, before, batch, *inverse_query_masks(jnp.asarray(batch["actions"]), N)
    )
    named = pseudo_actions(
        logits["actions"],
        jnp.asarray(batch["actions"]),
        jnp.asarray(batch["length"]),
        threshold=0.0,
    )
    inside = np.arange(FRAMES)[None, :] < batch["length"][:, None] - 1
    np.testing.assert_array_equal(np.asarray(named) >= 0, inside)
    # A labelled batch is untouched by the option: same parameters with it on or off.
    labelled = tiny_batch()
    _, off, _ = _one_step(labelled)
    _, on, metrics = _one_step(labelled, pseudo_label_weight=1.0, pseudo_label_threshold=0.0)
    assert metrics["pseudo_examples"] == 0
    for a, b in zip(jax.tree.leaves(off), jax.tree.leaves(on)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
