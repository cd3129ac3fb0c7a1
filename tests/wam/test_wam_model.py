"""The WAM backbone and its losses: alignment, causality, what the action loss counts."""

import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.dynamics.tiny import key, random_params
from tests.wam.tiny import (
    ACTIONS,
    FRAMES,
    TOKENIZER,
    WORDS,
    tiny_apply,
    tiny_batch,
    tiny_losses,
    tiny_params,
    tiny_system,
    tiny_wam_config,
)
from wam_jax.config import WAMConfig
from wam_jax.masking import MODE_IDS, sample_wam_masks
from wam_jax.model import WorldActionModel
from wam_jax.steps import shown_so_far, wam_eval_step
from wam_jax.system import NO_LABEL, shift_into_slots

N, V = 4, 16


def _backbone(spatial_positions: str = "learned", **overrides):
    config = tiny_wam_config(spatial_positions=spatial_positions, **overrides)
    model = WorldActionModel(
        config, vocab_size=V, num_tokens=N, num_actions=ACTIONS, num_latent_actions=0, num_words=11
    )
    rng = np.random.default_rng(0)
    words = jnp.asarray(rng.integers(1, 11, (1, WORDS)))
    tokens = jnp.asarray(rng.integers(0, V, (1, FRAMES, N)))
    slots = jnp.asarray(rng.integers(0, ACTIONS, (1, FRAMES)))
    return model, random_params(model, words, tokens, slots), words, tokens, slots


@pytest.mark.parametrize("t", range(1, FRAMES))
def test_action_in_slot_t_reaches_frame_t_and_nothing_earlier(t):
    model, params, words, tokens, slots = _backbone()
    base = model.apply({"params": params}, words, tokens, slots)
    other = slots.at[0, t].set((slots[0, t] + 1) % ACTIONS)
    changed = model.apply({"params": params}, words, tokens, other)
    np.testing.assert_array_equal(base["video"][:, :t], changed["video"][:, :t])
    np.testing.assert_array_equal(base["actions"][:, :t], changed["actions"][:, :t])
    # The policy head's a_{t-1} (row t-1) must not see slot t, where a_{t-1} itself sits.
    np.testing.assert_array_equal(base["next_actions"][:, :t], changed["next_actions"][:, :t])
    assert np.abs(base["video"][:, t] - changed["video"][:, t]).max() > 1e-4


@pytest.mark.parametrize("t", range(1, FRAMES))
def test_action_prediction_is_causal_in_frames(t):
    """The slot-t prediction (a_{t-1}) may look at frames <= t, never at a later frame."""
    model, params, words, tokens, slots = _backbone()

    def slot_logits(tokens_embedded_shift):
        out = model.apply({"params": params}, words, tokens_embedded_shift, slots)
        return out["actions"][0, t]

    base = slot_logits(tokens)
    if t + 1 < FRAMES:
        later = tokens.at[0, t + 1 :].set((tokens[0, t + 1 :] + 1) % V)
        np.testing.assert_array_equal(base, slot_logits(later))
    same_frame = tokens.at[0, t].set((tokens[0, t] + 1) % V)
    assert np.abs(base - slot_logits(same_frame)).max() > 1e-4


READS_TARGET = {"target_head": True, "policy_reads_target": True}
AHEAD = {"ahead_head": True}
GRID_CONV = {"grid_conv": True}


@pytest.mark.parametrize("t", range(FRAMES))
@pytest.mark.parametrize(
    "spatial_positions, options",
    [("learned", {}), ("rope", {}), ("rope", READS_TARGET), ("rope", AHEAD), ("rope", GRID_CONV)],
    ids=["learned", "rope", "rope-reads-target", "rope-ahead", "rope-grid-conv"],
)
def test_next_action_sees_frames_up_to_its_own(t, spatial_positions, options):
    """Row t of the policy head (a_t) reads frames <= t, never frame t+1 nor its slot (also
    with rotary positions in spatial attention, and reading the target head's pointer); so
    does the ahead head, which reads the same features."""
    model, params, words, tokens, slots = _backbone(spatial_positions, **options)
    heads = ("next_actions", "ahead") if options.get("ahead_head") else ("next_actions",)

    for head in heads:

        def next_logits(tokens_in, slots_in, head=head):
            return model.apply({"params": params}, words, tokens_in, slots_in)[head][0, t]

        base = next_logits(tokens, slots)
        if t + 1 < FRAMES:
            later_tokens = tokens.at[0, t + 1 :].set((tokens[0, t + 1 :] + 1) % V)
            later_slots = slots.at[0, t + 1 :].set((slots[0, t + 1 :] + 1) % ACTIONS)
            np.testing.assert_array_equal(base, next_logits(later_tokens, slots))
            np.testing.assert_array_equal(base, next_logits(tokens, later_slots))
        same_frame = tokens.at[0, t].set((tokens[0, t] + 1) % V)
        assert np.abs(base - next_logits(same_frame, slots)).max() > 1e-4
        if t > 0:
            earlier = tokens.at[0, t - 1].set((tokens[0, t - 1] + 1) % V)
            assert np.abs(base - next_logits(earlier, slots)).max() > 1e-4


def test_policy_reads_what_the_target_head_points_at():
    """With `policy_reads_target` the policy logits move with the target head's pointer (and
    nothing else does); the policy's gradient reaches the video features it pools and the
    hidden layer, never the pointer itself. Without it, the target head is not read."""
    model, params, words, tokens, slots = _backbone("rope", **READS_TARGET)
    plain, plain_params, *_ = _backbone("rope", target_head=True)

    def pointed_elsewhere(p):
        kernel = p["target_head"]["kernel"]
        return {**p, "target_head": {**p["target_head"], "kernel": -3.0 * kernel}}

    for m, p, reads in ((model, params, True), (plain, plain_params, False)):
        base = m.apply({"params": p}, words, tokens, slots)
        moved = m.apply({"params": pointed_elsewhere(p)}, words, tokens, slots)
        np.testing.assert_array_equal(base["actions"], moved["actions"])
        np.testing.assert_array_equal(base["video"], moved["video"])
        changed = np.abs(base["next_actions"] - moved["next_actions"]).max(axis=-1)
        assert (changed > 1e-5).all() if reads else not changed.any()

    def policy_sum(p):
        return model.apply({"params": p}, words, tokens, slots)["next_actions"].sum()

    grads = jax.grad(policy_sum)(params)
    assert not np.any(grads["target_head"]["kernel"])
    assert np.abs(grads["policy_hidden"]["kernel"]).max() > 0
    assert np.abs(grads["token_embed"]["embedding"]).max() > 0


def test_the_policy_cannot_read_a_target_head_that_is_not_there():
    with pytest.raises(ValueError, match="policy_reads_target needs target_head"):
        WAMConfig(policy_reads_target=True)


def test_instruction_reaches_every_frame_and_action():
    model, params, words, tokens, slots = _backbone()
    base = model.apply({"params": params}, words, tokens, slots)
    changed = model.apply(
        {"params": params}, words.at[0, 0].set(words[0, 0] % 10 + 1), tokens, slots
    )
    for name in ("video", "actions", "next_actions"):
        per_frame = np.abs(base[name] - changed[name]).reshape(FRAMES, -1).max(axis=1)
        assert (per_frame > 1e-5).all(), name


def test_slots_hold_the_action_leading_into_the_frame():
    system = tiny_system(with_lam=True)
    batch = tiny_batch()
    params = tiny_params(system, batch)
    hidden = jnp.zeros((2, FRAMES, N), bool)
    slots_hidden = jnp.zeros((2, FRAMES), bool).at[0, 2].set(True)
    _, aux = tiny_apply(system, params, batch, hidden, slots_hidden)
    slots = np.asarray(aux["slots"])
    mask_id, none_id = ACTIONS + 4, ACTIONS + 5
    assert (slots[:, 0] == none_id).all()
    np.testing.assert_array_equal(slots[0, [1, 3, 4]], batch["actions"][0, [0, 2, 3]])
    assert slots[0, 2] == mask_id  # hidden
    length = batch["length"][1]
    np.testing.assert_array_equal(slots[1, 1:length], batch["actions"][1, : length - 1])
    assert (slots[1, length:] == none_id).all()
    # Unlabelled: the LAM's latent action stands in, offset past the real ids.
    unlabelled = tiny_batch(labelled=False)
    _, aux = tiny_apply(system, params, unlabelled, hidden, hidden[..., 0])
    latent = np.asarray(aux["latent_actions"])
    np.testing.assert_array_equal(np.asarray(aux["slots"])[0, 1:], ACTIONS + latent[0, :-1])


def test_masks_per_mode():
    length = jnp.array([5, 4, 3, 2] * 64)
    masks = sample_wam_masks(
        key(1),
        length,
        num_frames=5,
        num_tokens=N,
        mode_probs=(0.4, 0.3, 0.3),
        min_mask_rate=0.5,
        max_mask_rate=1.0,
    )
    video, slots, mode = (np.asarray(masks[k]) for k in ("video", "slots", "mode"))
    assert not video[:, 0].any() and not slots[:, 0].any()
    assert set(np.unique(mode)) == {0, 1, 2}
    policy = mode == MODE_IDS["policy"]
    for i in np.flatnonzero(policy):
        cut = np.argmax(slots[i])  # the first hidden slot
        assert 1 <= cut <= max(int(length[i]) - 1, 1)
        assert slots[i, cut:].all() and not slots[i, :cut].any()
        assert video[i, cut:].all() and not video[i, :cut].any()
    inverse = mode == MODE_IDS["inverse"]
    assert not video[inverse].any() and slots[inverse][:, 1:].all()
    maskgit = mode == MODE_IDS["maskgit"]
    rates = video[maskgit][:, 1:].mean(axis=(1, 2))
    assert rates.std() > 0.05  # one rate per sample, not one per batch
    # Maskgit hides video from a cut on too: the frames before it are whole, so the policy
    # head trains on them. The first frame with a hidden token is at most length - 1.
    first_hidden = np.array([np.argmax(v.any(axis=-1)) for v in video[maskgit]])
    assert (first_hidden <= np.maximum(length[maskgit] - 1, 1)).all()
    whole_prefix = np.asarray(shown_so_far(masks["video"])).sum(axis=1)[maskgit]
    assert (whole_prefix >= 1).all() and (whole_prefix >= 2).mean() > 0.3


def test_action_loss_counts_only_hidden_known_actions():
    system = tiny_system()
    batch = tiny_batch()
    params = tiny_params(system, batch)
    video_hidden = jnp.zeros((2, FRAMES, N), bool).at[:, 1:].set(True)
    slots_hidden = jnp.zeros((2, FRAMES), bool).at[:, 1:3].set(True)  # a_0, a_1 hidden
    _, base = tiny_losses(system, params, batch, video_hidden, slots_hidden, action_loss_weight=1.0)
    assert base["labelled_slots"] == 4
    # Another action where the slot is visible: the action loss's targets do not change
    # (its input does, so compare with the targets re-scored by hand instead).
    logits, aux = tiny_apply(system, params, batch, video_hidden, slots_hidden)
    targets = np.asarray(shift_into_slots(jnp.asarray(batch["actions"])))
    logp = jax.nn.log_softmax(logits["actions"])
    by_hand = -np.mean([logp[b, t, targets[b, t]] for b in range(2) for t in (1, 2)])
    np.testing.assert_allclose(base["action_ce"], by_hand, rtol=1e-5)
    unknown = dict(
        batch, actions=np.where(np.arange(FRAMES) == 0, NO_LABEL, batch["actions"]).astype(np.int32)
    )
    _, fewer = tiny_losses(
        system, params, unknown, video_hidden, slots_hidden, action_loss_weight=1.0
    )
    assert fewer["labelled_slots"] == 2  # a_0 unknown in both clips: not counted


def test_policy_loss_counts_known_actions_after_whole_frames():
    """The policy head learns a_t only where frames 0..t were all shown and a_t is known."""
    system = tiny_system()
    batch = tiny_batch()
    params = tiny_params(system, batch)
    slots_hidden = jnp.zeros((2, FRAMES), bool)
    # Clip 0: one token of frame 3 hidden -> a_0, a_1, a_2 count; clip 1 (length 3): a_0, a_1.
    video_hidden = jnp.zeros((2, FRAMES, N), bool).at[0, 3, 1].set(True)
    logits, aux = tiny_apply(system, params, batch, video_hidden, slots_hidden)
    _, m = tiny_losses(system, params, batch, video_hidden, slots_hidden, action_loss_weight=1.0)
    counted = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert m["policy_examples"] == len(counted)
    logp = jax.nn.log_softmax(logits["next_actions"])
    by_hand = -np.mean([logp[b, t, batch["actions"][b, t]] for b, t in counted])
    np.testing.assert_allclose(m["policy_ce"], by_hand, rtol=1e-5)
    # Behaviour cloning (slot weight 0) trains the policy head alone.
    bc = jax.grad(
        lambda p: tiny_losses(
            system,
            p,
            batch,
            video_hidden,
            slots_hidden.at[:, 1:].set(True),
            action_loss_weight=1.0,
            video_loss_weight=0.0,
            slot_loss_weight=0.0,
        )[0]
    )(params)
    assert not np.any(bc["wam"]["action_head"]["kernel"])
    assert not np.any(bc["wam"]["video_head"]["kernel"])
    assert np.abs(bc["wam"]["policy_head"]["kernel"]).max() > 0


def test_policy_learns_the_expert_choice_where_the_batch_gives_one():
    """Expert-noise data: the policy head's target is `policy_actions` (the bot's choice),
    while the action slots (world model, inverse dynamics) keep the action taken."""
    system = tiny_system()
    batch = tiny_batch()
    params = tiny_params(system, batch)
    video_hidden = jnp.zeros((2, FRAMES, N), bool).at[:, 3:].set(True)
    slots_hidden = jnp.zeros((2, FRAMES), bool).at[:, 1:].set(True)
    expert = np.where(batch["actions"] >= 0, (batch["actions"] + 1) % 3, batch["actions"])
    logits, _ = tiny_apply(system, params, batch, video_hidden, slots_hidden)
    _, taken = tiny_losses(system, params, batch, video_hidden, slots_hidden, action_loss_weight=1)
    _, m = tiny_losses(
        system,
        params,
        batch,
        video_hidden,
        slots_hidden,
        action_loss_weight=1.0,
        policy_actions_BT=jnp.asarray(expert),
    )
    assert m["policy_examples"] == taken["policy_examples"] > 0
    shown = np.asarray(shown_so_far(video_hidden)) & (expert >= 0)
    logp = jax.nn.log_softmax(logits["next_actions"])
    by_hand = -np.mean([logp[b, t, expert[b, t]] for b, t in zip(*np.nonzero(shown))])
    np.testing.assert_allclose(m["policy_ce"], by_hand, rtol=1e-5)
    assert abs(float(m["policy_ce"]) - float(taken["policy_ce"])) > 1e-4
    for name in ("action_ce", "labelled_slots", "video_ce"):
        np.testing.assert_allclose(m[name], taken[name], rtol=1e-6)


def test_policy_loss_weight_scales_the_policy_term_alone():
    system = tiny_system()
    batch = tiny_batch()
    params = tiny_params(system, batch)
    video_hidden = jnp.zeros((2, FRAMES, N), bool).at[:, 3:].set(True)
    slots_hidden = jnp.zeros((2, FRAMES), bool).at[:, 2:].set(True)

    def losses(weight):
        return tiny_losses(
            system,
            params,
            batch,
            video_hidden,
            slots_hidden,
            action_loss_weight=0.5,
            slot_loss_weight=2.0,
            policy_loss_weight=weight,
        )

    loss, m = losses(3.0)
    assert m["policy_examples"] > 0 and m["labelled_slots"] > 0
    expected = m["video_ce"] + 0.5 * (2.0 * m["action_ce"] + 3.0 * m["policy_ce"])
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    # Weight 0: the policy head gets no gradient, the slots still train the action head.
    grads = jax.grad(
        lambda p: tiny_losses(
            system,
            p,
            batch,
            video_hidden,
            slots_hidden,
            action_loss_weight=1.0,
            policy_loss_weight=0.0,
        )[0]
    )(params)
    assert not np.any(grads["wam"]["policy_head"]["kernel"])
    assert np.abs(grads["wam"]["action_head"]["kernel"]).max() > 0


def test_unlabelled_clips_train_only_the_video_part():
    system = tiny_system()
    batch = tiny_batch(labelled=False)
    params = tiny_params(system, batch)
    video_hidden = jnp.zeros((2, FRAMES, N), bool).at[:, 2:].set(True)
    slots_hidden = jnp.zeros((2, FRAMES), bool).at[:, 1:].set(True)

    def grads(action_loss_weight):
        def loss(p):
            return tiny_losses(
                system, p, batch, video_hidden, slots_hidden, action_loss_weight=action_loss_weight
            )[0]

        return jax.grad(loss)(params)

    joint, video_only = grads(1.0), grads(0.0)
    for a, b in zip(jax.tree.leaves(joint), jax.tree.leaves(video_only)):
        np.testing.assert_array_equal(a, b)
    for head in ("action_head", "policy_head"):
        assert all(not np.any(leaf) for leaf in jax.tree.leaves(joint["wam"][head])), head
    assert np.abs(joint["wam"]["video_head"]["kernel"]).max() > 0
    # A labelled batch does reach the action head.
    labelled = tiny_batch()

    def labelled_loss(p):
        return tiny_losses(system, p, labelled, video_hidden, slots_hidden, action_loss_weight=1.0)[
            0
        ]

    assert np.abs(jax.grad(labelled_loss)(params)["wam"]["action_head"]["kernel"]).max() > 0


def test_bad_shapes_are_named():
    model, params, words, tokens, slots = _backbone()
    with pytest.raises(ValueError, match="expects tokens"):
        model.apply({"params": params}, words, tokens[:, :, :3], slots)
    with pytest.raises(ValueError, match="expects words"):
        model.apply({"params": params}, words[:, :2], tokens, slots)
    assert TOKENIZER.num_tokens == N


def test_grid_positions_add_a_row_and_a_column_vector_to_each_video_token():
    """With the grid embedding at zero the grid model is the plain one; a row vector then
    moves the tokens of that row (N = 4: a 2 x 2 grid) and no word or slot input."""
    plain, params, words, tokens, slots = _backbone()
    grid, grid_params, *_ = _backbone("grid")
    dim = grid.config.dim
    grid_params = dict(params, grid_pos={"row": jnp.zeros((2, dim)), "col": jnp.zeros((2, dim))})
    base = plain.apply({"params": params}, words, tokens, slots)
    for name, value in grid.apply({"params": grid_params}, words, tokens, slots).items():
        np.testing.assert_allclose(value, base[name], atol=1e-6, err_msg=name)
    # Row 1 shifted by a vector == the plain model with that vector added to tokens 2 and 3's
    # embeddings, i.e. to their rows of the token table when each token id is distinct.
    shift_D = jnp.asarray(np.random.default_rng(1).normal(0, 0.5, dim), jnp.float32)
    grid_params["grid_pos"] = {
        "row": jnp.stack([jnp.zeros(dim), shift_D]),
        "col": jnp.zeros((2, dim)),
    }
    distinct = jnp.broadcast_to(jnp.arange(N), tokens.shape)
    table = params["token_embed"]["embedding"]
    moved_table = table.at[2:N].add(shift_D)
    moved = plain.apply(
        {"params": dict(params, token_embed={"embedding": moved_table})}, words, distinct, slots
    )
    for name, value in grid.apply({"params": grid_params}, words, distinct, slots).items():
        np.testing.assert_allclose(value, moved[name], atol=1e-5, err_msg=name)
    assert (
        np.abs(
            moved["video"] - plain.apply({"params": params}, words, distinct, slots)["video"]
        ).max()
        > 1e-3
    )


def test_rotary_positions_reuse_the_grid_parameters_and_change_attention():
    """`rope` has exactly the `grid` model's parameters; the rotation changes what the
    video tokens and the slot compute, so the same parameters give other outputs."""
    grid, params, words, tokens, slots = _backbone("grid")
    rope, rope_params, *_ = _backbone("rope")
    assert jax.tree.structure(rope_params) == jax.tree.structure(params)
    base = grid.apply({"params": params}, words, tokens, slots)
    got = rope.apply({"params": params}, words, tokens, slots)
    for name in ("video", "next_actions"):
        assert np.abs(got[name] - base[name]).max() > 1e-4, name
    # One of the two heads rotating: other outputs again, from the same parameters.
    half, *_ = _backbone("rope", rotary_heads=1)
    partial = half.apply({"params": params}, words, tokens, slots)
    for name in ("video", "next_actions"):
        assert np.abs(partial[name] - base[name]).max() > 1e-4, name
        assert np.abs(partial[name] - got[name]).max() > 1e-4, name


def test_unknown_spatial_positions_are_refused():
    with pytest.raises(ValueError, match="spatial_positions 'rows'"):
        WAMConfig(spatial_positions="rows")
    with pytest.raises(ValueError, match="head size .* divisible by 4"):
        WAMConfig(spatial_positions="rope", dim=24, num_heads=4)
    with pytest.raises(ValueError, match="rotary_heads 5"):
        WAMConfig(spatial_positions="rope", num_heads=4, rotary_heads=5)
    with pytest.raises(ValueError, match="needs spatial_positions 'rope'"):
        WAMConfig(spatial_positions="grid", rotary_heads=2)


@pytest.mark.parametrize("per_frame", [False, True])
def test_tokens_per_frame_depend_on_that_frame_only(per_frame):
    """`tokenize_per_frame`: frame t's codes are those of frame t encoded alone, whatever came
    before; otherwise the tokenizer's causal temporal attention lets earlier frames in."""
    system = tiny_system(tokenize_per_frame=per_frame)
    batch = tiny_batch(batch=4, seed=3)
    params = tiny_params(system, batch)
    tokenize = jax.jit(
        lambda video: system.apply({"params": params}, video, method=system.tokenize)
    )
    video = jnp.asarray(batch["video"], jnp.float32) / 255.0
    tokens_BTN = np.asarray(tokenize(video))
    alone_BTN = np.concatenate(
        [np.asarray(tokenize(video[:, t : t + 1])) for t in range(FRAMES)], 1
    )
    other = video.at[:, 0].set(
        jnp.asarray(np.random.default_rng(9).random(video.shape[:1] + video.shape[2:]), jnp.float32)
    )
    later_changed = (np.asarray(tokenize(other))[:, 1:] != tokens_BTN[:, 1:]).mean()
    if per_frame:
        np.testing.assert_array_equal(tokens_BTN, alone_BTN)
        assert later_changed == 0
    else:
        np.testing.assert_array_equal(tokens_BTN[:, 0], alone_BTN[:, 0])
        assert later_changed > 0


def test_instruction_film_modulates_video_tokens_by_the_mean_word():
    """FiLM at zero is the plain model; otherwise each video embedding becomes
    e * (1 + gamma) + beta with (gamma, beta) = Dense(mean of the non-padding words)."""
    plain, params, words, tokens, slots = _backbone()
    film, film_params, *_ = _backbone(instruction_film=True)
    dim = film.config.dim
    zero = dict(params, film={"kernel": jnp.zeros((dim, 2 * dim)), "bias": jnp.zeros(2 * dim)})
    base = plain.apply({"params": params}, words, tokens, slots)
    for name, value in film.apply({"params": zero}, words, tokens, slots).items():
        np.testing.assert_allclose(value, base[name], atol=1e-6, err_msg=name)

    words = words.at[0, -2:].set(0)  # two padding positions
    rng = np.random.default_rng(2)
    kernel, bias = rng.normal(0, 0.3, (dim, 2 * dim)), rng.normal(0, 0.3, 2 * dim)
    film_params = dict(params, film={"kernel": jnp.asarray(kernel), "bias": jnp.asarray(bias)})
    table = np.asarray(params["word_embed"]["embedding"])
    video = rng.normal(size=(1, FRAMES, N, dim)).astype(np.float32)

    def modulated(p):
        embedded = p["word_embed"]["embedding"][words]
        return film.apply({"params": p}, words, embedded, jnp.asarray(video), method="_film")

    bag = table[np.asarray(words[0, :-2])].mean(axis=0)
    gamma, beta = np.split(bag @ kernel + bias, 2)
    np.testing.assert_allclose(modulated(film_params), video * (1 + gamma) + beta, rtol=2e-5)
    # The padding word's embedding plays no part.
    padded = dict(film_params, word_embed={"embedding": jnp.asarray(table).at[0].add(1.0)})
    np.testing.assert_allclose(modulated(padded), modulated(film_params), rtol=1e-6)


def test_eval_reports_the_policy_under_another_clips_instruction():
    """The rolled-instruction policy metric equals the policy's own when every clip has the
    same instruction, and moves when the instructions differ (random weights read words)."""
    system = tiny_system()
    batch = tiny_batch(batch=4, seed=5)
    params = tiny_params(system, batch)
    state = types.SimpleNamespace(apply_fn=system.apply, params=params, model_state={})
    evaluate = jax.jit(
        lambda b: wam_eval_step(state, b, num_tokens=TOKENIZER.num_tokens, action_loss_weight=1.0)
    )
    same = dict(batch, words=np.broadcast_to(batch["words"][:1], batch["words"].shape).copy())
    metrics = evaluate(same)
    assert metrics["policy_other_instruction_ce"] == metrics["policy_action_ce"]
    assert metrics["policy_other_instruction_accuracy"] == metrics["policy_action_accuracy"]
    metrics = evaluate(batch)
    assert abs(metrics["policy_other_instruction_ce"] - metrics["policy_action_ce"]) > 1e-4


def _check_head_gradient(losses, params, head: str) -> None:
    """At weight 1 an auxiliary loss sends a finite, nonzero gradient into its head; at
    weight 0 none."""
    grads = jax.grad(lambda p: losses(p, 1.0)[0])(params)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(grads))
    assert np.abs(grads["wam"][head]["kernel"]).max() > 0
    grads0 = jax.grad(lambda p: losses(p, 0.0)[0])(params)
    assert not np.any(grads0["wam"][head]["kernel"])


def test_target_loss_points_at_the_named_cells():
    """The target head's loss is, per frame inside the episode with a target, -log of the
    softmax mass on its target tokens (numerics by hand); frames without a target add nothing
    and leave the gradient finite; at weight 0 the head gets no gradient."""
    system = tiny_system(target_head=True)
    batch = tiny_batch()  # clip 0: 5 frames; clip 1: 3 frames
    params = tiny_params(system, batch)
    targets = np.zeros((2, FRAMES, N), bool)
    targets[0, :, 1] = True
    targets[0, 2, 3] = True  # two named objects in one frame
    targets[0, 4] = False  # the object carried away: no target in this frame
    targets[1, :, 2] = True  # frames 3 and 4 lie past clip 1's length
    video_hidden = jnp.zeros((2, FRAMES, N), bool).at[:, 3:].set(True)
    slots_hidden = jnp.zeros((2, FRAMES), bool)

    def losses(p, weight):
        return tiny_losses(
            system,
            p,
            batch,
            video_hidden,
            slots_hidden,
            action_loss_weight=1.0,
            targets_BTN=jnp.asarray(targets),
            target_loss_weight=weight,
        )

    logits, _ = tiny_apply(system, params, batch, video_hidden, slots_hidden)
    assert logits["targets"].shape == (2, FRAMES, N)
    logp = np.asarray(jax.nn.log_softmax(logits["targets"]))
    counted = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2)]
    by_hand = -np.mean([np.log(np.exp(logp[b, t][targets[b, t]]).sum()) for b, t in counted])
    top = [targets[b, t, np.argmax(logp[b, t])] for b, t in counted]
    (loss, m), (loss0, _) = losses(params, 1.0), losses(params, 0.0)
    np.testing.assert_allclose(m["target_ce"], by_hand, rtol=1e-5)
    np.testing.assert_allclose(m["target_accuracy"], np.mean(top), rtol=1e-6)
    np.testing.assert_allclose(loss - loss0, by_hand, rtol=1e-4)

    _check_head_gradient(losses, params, "target_head")

    with pytest.raises(ValueError, match="no `targets`"):
        tiny_losses(system, params, batch, video_hidden, slots_hidden, action_loss_weight=1.0)
    plain = tiny_system()
    plain_params = tiny_params(plain, batch)
    plain_logits, _ = tiny_apply(plain, plain_params, batch, video_hidden, slots_hidden)
    assert "targets" not in plain_logits


def test_ahead_loss_classifies_the_cell_ahead_where_the_policy_learns():
    """The ahead head's loss is the cross-entropy of its class at every frame inside the
    episode whose past was shown whole (the policy's positions; numerics by hand), added at
    `ahead_loss_weight`; at weight 0 the head gets no gradient; a batch without `ahead` is
    refused, and a model without the head has no such output."""
    system = tiny_system(ahead_head=True)
    batch = tiny_batch()  # clip 0: 5 frames; clip 1: 3 frames
    params = tiny_params(system, batch)
    ahead = np.random.default_rng(1).integers(0, 4, (2, FRAMES)).astype(np.int32)
    video_hidden = jnp.zeros((2, FRAMES, N), bool).at[0, 3:].set(True)
    slots_hidden = jnp.zeros((2, FRAMES), bool)

    def losses(p, weight):
        return tiny_losses(
            system,
            p,
            batch,
            video_hidden,
            slots_hidden,
            action_loss_weight=1.0,
            ahead_BT=jnp.asarray(ahead),
            ahead_loss_weight=weight,
        )

    logits, _ = tiny_apply(system, params, batch, video_hidden, slots_hidden)
    assert logits["ahead"].shape == (2, FRAMES, 4)
    logp = np.asarray(jax.nn.log_softmax(logits["ahead"]))
    # Clip 0: frames 0-2 shown (3 on hidden); clip 1: all shown, frames 0-2 inside.
    counted = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    by_hand = -np.mean([logp[b, t, ahead[b, t]] for b, t in counted])
    right = np.mean([np.argmax(logp[b, t]) == ahead[b, t] for b, t in counted])
    (loss, m), (loss0, _) = losses(params, 1.0), losses(params, 0.0)
    np.testing.assert_allclose(m["ahead_ce"], by_hand, rtol=1e-5)
    np.testing.assert_allclose(m["ahead_accuracy"], right, rtol=1e-6)
    np.testing.assert_allclose(loss - loss0, by_hand, rtol=1e-4)

    _check_head_gradient(losses, params, "ahead_head")

    with pytest.raises(ValueError, match="no `ahead`"):
        tiny_losses(system, params, batch, video_hidden, slots_hidden, action_loss_weight=1.0)
    plain = tiny_system()
    plain_logits, _ = tiny_apply(
        plain, tiny_params(plain, batch), batch, video_hidden, slots_hidden
    )
    assert "ahead" not in plain_logits


def test_grid_conv_mixes_each_cell_with_its_neighbours_in_its_frame():
    """The grid convolution starts at zero (the embeddings of a model without it), and once
    trained a cell's embedding depends on the 3x3 cells around it in its own frame only: on
    a 4x4 grid, changing one cell changes its neighbours and nothing else."""
    side = 4
    config = tiny_wam_config(spatial_positions="grid", grid_conv=True)
    model = WorldActionModel(
        config,
        side * side,
        num_tokens=side * side,
        num_actions=ACTIONS,
        num_latent_actions=0,
        num_words=11,
    )
    rng = np.random.default_rng(0)
    words = jnp.asarray(rng.integers(1, 11, (1, WORDS)))
    tokens = jnp.asarray(rng.integers(0, side * side, (1, FRAMES, side * side)))
    slots = jnp.asarray(rng.integers(0, ACTIONS, (1, FRAMES)))
    params = random_params(model, words, tokens, slots)
    plain = WorldActionModel(
        tiny_wam_config(spatial_positions="grid"),
        side * side,
        num_tokens=side * side,
        num_actions=ACTIONS,
        num_latent_actions=0,
        num_words=11,
    )
    without = {k: v for k, v in params.items() if k != "grid_conv"}

    def embeddings(m, p, tokens_in):
        return np.asarray(m.apply({"params": p}, words, tokens_in, method="video_embeddings"))

    initial = nn.meta.unbox(model.init(key(0), words, tokens, slots))["params"]["grid_conv"]
    assert not any(np.any(leaf) for leaf in jax.tree.leaves(initial))
    zero = {**params, "grid_conv": initial}
    np.testing.assert_array_equal(
        embeddings(model, zero, tokens), embeddings(plain, without, tokens)
    )
    base = embeddings(model, params, tokens)
    frame, row, col = 2, 1, 3
    cell = row * side + col
    changed = embeddings(
        model, params, tokens.at[0, frame, cell].set((tokens[0, frame, cell] + 1) % (side * side))
    )
    moved = np.abs(changed - base).max(axis=-1)[0] > 1e-6  # [T, N]
    near = np.zeros((FRAMES, side, side), bool)
    near[frame, max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2] = True
    np.testing.assert_array_equal(moved, near.reshape(FRAMES, side * side))
