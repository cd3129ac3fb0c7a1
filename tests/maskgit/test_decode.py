"""MaskGIT decoding of one frame: fill every masked token in `steps` steps, never undo one."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genie_jax.maskgit import SamplingConfig, decode_frame, masked_after_step

B, N, V = 4, 16, 8
MASK = V  # the mask id is one past the vocabulary


def _key(seed: int) -> jax.Array:
    return jax.random.key(seed, impl="rbg")


LOGITS_BNV = 2.0 * jax.random.normal(_key(100), (B, N, V))
EMBED_VV = jax.random.normal(_key(101), (V + 1, V))  # one row per token id, the mask included


# A logits function is (table [B, N, V], w): logits = table + w * mean embedding of the frame's
# current tokens. Both are arguments of one compiled decoder per sampling config.
FIXED = (LOGITS_BNV, 0.0)  # ignores its input: the same logits at every step
TOKEN_DEPENDENT = (LOGITS_BNV, 1.0)  # changes as tokens are revealed
LOGITS_FNS = {"fixed": FIXED, "token_dependent": TOKEN_DEPENDENT}
PEAKED = (jnp.zeros((B, N, V)).at[:, :, 2].set(3.0), 0.0)  # p(2) = e^3/(e^3 + 7) = 0.742


@functools.cache
def _jitted_decode(sampling: SamplingConfig):
    """One compiled decoder per sampling config."""

    def decode(table_BNV, context_weight, tokens_BN, rng):
        def logits_fn(tokens_BN):
            context_BV = jnp.mean(EMBED_VV[tokens_BN], axis=1)
            return table_BNV + context_weight * context_BV[:, None, :]

        return decode_frame(
            logits_fn, tokens_BN, rng, mask_id=MASK, sampling=sampling, return_history=True
        )

    return jax.jit(decode)


def _decode(logits, tokens_BN, seed=0, **sampling):
    """(final tokens [B, N], history [steps, B, N]) as numpy arrays."""
    table_BNV, context_weight = logits
    decode = _jitted_decode(SamplingConfig(**sampling))
    tokens_BN, history_SBN = decode(
        table_BNV, context_weight, jnp.asarray(tokens_BN, jnp.int32), _key(seed)
    )
    return np.asarray(tokens_BN), np.asarray(history_SBN)


def _blank(batch: int = B) -> np.ndarray:
    return np.full((batch, N), MASK, np.int32)


def _partially_known(seed: int = 3, known_fraction: float = 0.4) -> np.ndarray:
    """Random tokens in 0..V-1, each masked with probability 1 - known_fraction."""
    rng = np.random.default_rng(seed)
    tokens_BN = rng.integers(0, V, (B, N), dtype=np.int32)
    tokens_BN[rng.random((B, N)) > known_fraction] = MASK
    return tokens_BN


def _expected_masked_counts(start_masked_B: np.ndarray, steps: int) -> np.ndarray:
    """[steps, B]: after step s, min(schedule[s], masked before the step - 1), never below 0."""
    schedule_S = masked_after_step(N, steps)
    counts, masked_B = [], start_masked_B
    for s in range(steps):
        masked_B = np.maximum(np.minimum(schedule_S[s], masked_B - 1), 0)
        counts.append(masked_B)
    return np.stack(counts)


START_FRAMES = {"blank": _blank, "partially_known": _partially_known}
STEPS = [1, 4, 25]  # 25 > N: more steps than tokens, the schedule is flat in places


@pytest.mark.parametrize("logits_name", sorted(LOGITS_FNS))
@pytest.mark.parametrize("start_name", sorted(START_FRAMES))
@pytest.mark.parametrize("steps", STEPS)
def test_every_mask_is_filled_with_a_vocabulary_token(logits_name, start_name, steps):
    """A mask id left over (or an id >= V) would be fed to the tokenizer decoder as garbage."""
    tokens_BN, history_SBN = _decode(
        LOGITS_FNS[logits_name], START_FRAMES[start_name](), steps=steps
    )
    assert tokens_BN.shape == (B, N)
    assert np.all((tokens_BN >= 0) & (tokens_BN < V))
    assert history_SBN.shape == (steps, B, N)
    np.testing.assert_array_equal(history_SBN[-1], tokens_BN)


@pytest.mark.parametrize("logits_name", sorted(LOGITS_FNS))
@pytest.mark.parametrize("start_name", sorted(START_FRAMES))
@pytest.mark.parametrize("steps", STEPS)
def test_masked_tokens_are_fixed_once_and_never_change(logits_name, start_name, steps):
    """Each masked position goes mask -> value exactly once; a revealed token that was re-masked
    or resampled later would break MaskGIT's "keep what you committed to" decoding."""
    start_BN = START_FRAMES[start_name]()
    tokens_BN, history_SBN = _decode(LOGITS_FNS[logits_name], start_BN, steps=steps)
    states_SBN = np.concatenate([start_BN[None], history_SBN])  # the start, then every step
    masked_SBN = states_SBN == MASK
    # Once unmasked, never masked again.
    assert not np.any(~masked_SBN[:-1] & masked_SBN[1:])
    # Exactly one reveal for every initially masked position, none for the others.
    reveals_BN = np.sum(masked_SBN[:-1] & ~masked_SBN[1:], axis=0)
    np.testing.assert_array_equal(reveals_BN, (start_BN == MASK).astype(int))
    # Once revealed, the value is the final one at every later step.
    final_SBN = np.broadcast_to(tokens_BN, states_SBN.shape)
    assert np.all(masked_SBN | (states_SBN == final_SBN))


@pytest.mark.parametrize("logits_name", sorted(LOGITS_FNS))
@pytest.mark.parametrize("steps", STEPS)
def test_known_tokens_never_change(logits_name, steps):
    """Tokens given as context (not masked) must survive every step untouched."""
    start_BN = _partially_known()
    known_BN = start_BN != MASK
    assert known_BN.any() and (~known_BN).any()
    _, history_SBN = _decode(LOGITS_FNS[logits_name], start_BN, steps=steps)
    for s in range(steps):
        np.testing.assert_array_equal(history_SBN[s][known_BN], start_BN[known_BN])


@pytest.mark.parametrize("logits_name", sorted(LOGITS_FNS))
@pytest.mark.parametrize("start_name", sorted(START_FRAMES))
@pytest.mark.parametrize("steps", STEPS)
def test_masked_count_follows_the_schedule(logits_name, start_name, steps):
    """After step s, min(schedule[s], masked_before - 1) tokens stay masked: the cosine schedule,
    capped so every step reveals at least one token. With N=16 and 25 steps the schedule is flat
    for stretches, so only the cap makes progress there."""
    start_BN = START_FRAMES[start_name]()
    _, history_SBN = _decode(LOGITS_FNS[logits_name], start_BN, steps=steps)
    masked_SB = np.sum(history_SBN == MASK, axis=-1)
    expected_SB = _expected_masked_counts(np.sum(start_BN == MASK, axis=-1), steps)
    np.testing.assert_array_equal(masked_SB, expected_SB)
    assert np.all(np.diff(masked_SB, axis=0) <= 0)
    # Never more masked than the cosine schedule allows.
    assert np.all(masked_SB <= masked_after_step(N, steps)[:, None])


@pytest.mark.parametrize("steps", [4, 25])
def test_each_step_reveals_at_least_one_token_of_a_partial_frame(steps):
    """Starting from a partially known frame, whose masked count can be below the schedule's,
    a step that revealed nothing would waste model calls (or, at the end, leave masks)."""
    start_BN = _partially_known(known_fraction=0.7)
    _, history_SBN = _decode(TOKEN_DEPENDENT, start_BN, steps=steps)
    masked_SB = np.sum(np.concatenate([start_BN[None], history_SBN]) == MASK, axis=-1)
    still_masked_SB = masked_SB[:-1] > 0
    assert np.all((masked_SB[1:] < masked_SB[:-1])[still_masked_SB])
    assert np.all(masked_SB[-1] == 0)


def test_zero_logit_temperature_takes_the_argmax():
    """At logit temperature 0 every token is argmax(logits); sampling there would be random."""
    for choice_temperature in (0.0, 1.0):
        tokens_BN, _ = _decode(
            FIXED,
            _blank(),
            steps=4,
            logit_temperature=0.0,
            choice_temperature=choice_temperature,
        )
        np.testing.assert_array_equal(tokens_BN, np.argmax(LOGITS_BNV, axis=-1))


def test_greedy_choice_reveals_the_most_confident_tokens_first():
    """With both temperatures 0, step 0 keeps the N - schedule[0] tokens whose argmax has the
    highest probability and re-masks the rest: re-masking the confident ones would be inverted."""
    steps = 4
    _, history_SBN = _decode(
        FIXED, _blank(), steps=steps, logit_temperature=0.0, choice_temperature=0.0
    )
    confidence_BN = np.max(jax.nn.log_softmax(LOGITS_BNV), axis=-1)
    num_revealed = N - masked_after_step(N, steps)[0]
    for b in range(B):
        expected_revealed = set(np.argsort(-confidence_BN[b])[:num_revealed].tolist())
        assert set(np.flatnonzero(history_SBN[0, b] != MASK).tolist()) == expected_revealed


def test_same_rng_same_frame_different_rng_different_frame():
    """Decoding must be a pure function of its rng: reproducible rollouts, yet not constant."""
    tokens_a, history_a = _decode(TOKEN_DEPENDENT, _blank(), seed=0, steps=4)
    tokens_b, history_b = _decode(TOKEN_DEPENDENT, _blank(), seed=0, steps=4)
    np.testing.assert_array_equal(tokens_a, tokens_b)
    np.testing.assert_array_equal(history_a, history_b)
    others = [_decode(TOKEN_DEPENDENT, _blank(), seed=s, steps=4)[0] for s in (1, 2, 3)]
    # B*N = 64 tokens sampled from broad distributions: identical frames would mean the rng is
    # ignored.
    assert all(not np.array_equal(tokens_a, other) for other in others)


def test_per_row_keys_make_each_row_independent_of_the_batch():
    """With keys [B], row b decoded in the batch equals row b decoded alone with its key, and
    a batch's rows differ from the one-key decode (the row keys are used, not ignored). The
    keys are threefry ones (jax's default, which closed-loop play uses): this file's "rbg"
    keys draw other bits under `vmap`."""
    table_BNV, weight = TOKEN_DEPENDENT
    decode = _jitted_decode(SamplingConfig(steps=4))
    start_BN = jnp.asarray(_partially_known(), jnp.int32)
    keys_B = jax.vmap(jax.random.key)(jnp.arange(10, 10 + B))  # threefry: vmap-invariant
    batch_BN, _ = decode(table_BNV, weight, start_BN, keys_B)
    for b in range(B):
        alone_1N, _ = decode(table_BNV[b : b + 1], weight, start_BN[b : b + 1], keys_B[b : b + 1])
        np.testing.assert_array_equal(alone_1N[0], batch_BN[b])
    one_key_BN, _ = decode(table_BNV, weight, start_BN, keys_B[0])
    assert not np.array_equal(one_key_BN, batch_BN)


def test_keys_of_the_wrong_shape_or_kind_are_refused():
    decode = _jitted_decode(SamplingConfig(steps=2))
    table_BNV, weight = FIXED
    with pytest.raises(ValueError, match=f"one typed key .* or {B} of them"):
        decode(table_BNV, weight, jnp.asarray(_blank()), jax.vmap(_key)(jnp.arange(B - 1)))
    with pytest.raises(ValueError, match="one typed key"):
        decode(table_BNV, weight, jnp.asarray(_blank()), jax.random.PRNGKey(0))


def test_one_step_samples_follow_softmax_of_the_logits():
    """With one step (no re-masking) and logit temperature 1, each token is a draw from
    softmax(logits): 640 draws give p(2) = 0.742 +- 0.02. Argmax would give 1.0, a uniform
    draw 1/8, softmax(logits / 2) 0.39."""
    samples = np.stack([_decode(PEAKED, _blank(), seed=s, steps=1)[0] for s in range(10)])
    assert 0.68 < np.mean(samples == 2) < 0.80
    assert np.all(np.isin(samples, np.arange(V)))


def test_logit_temperature_sharpens_the_samples():
    """Dividing the logits by 0.5 gives p(2) = e^6 / (e^6 + 7) = 0.98; a temperature that was
    ignored or multiplied would stay at 0.74 or drop to 0.39."""
    samples = np.stack(
        [_decode(PEAKED, _blank(), seed=s, steps=1, logit_temperature=0.5)[0] for s in range(10)]
    )
    assert np.mean(samples == 2) > 0.95


def test_confidence_ranking_favours_likely_tokens_over_several_steps():
    """Over several steps, low-probability samples are re-masked and re-drawn more often than
    likely ones, so the final frame holds the mode more often than one softmax draw (0.74).
    Equal would mean confidence plays no part in which tokens are kept."""
    samples = np.stack([_decode(PEAKED, _blank(), seed=s, steps=4)[0] for s in range(10)])
    assert np.mean(samples == 2) > 0.82


def test_sampling_config_rejects_bad_values():
    """Zero steps or negative temperatures are configuration errors, not silent no-ops."""
    with pytest.raises(ValueError, match="steps must be >= 1"):
        SamplingConfig(steps=0)
    with pytest.raises(ValueError, match="temperatures must be >= 0"):
        SamplingConfig(logit_temperature=-1.0)
    with pytest.raises(ValueError, match="temperatures must be >= 0"):
        SamplingConfig(choice_temperature=-0.5)
