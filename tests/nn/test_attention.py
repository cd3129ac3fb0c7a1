"""`attend`: the chunked, rematerialized attention used on CPU equals the plain one, and a
batch sharded over devices stays where it is."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from genie_jax.nn.attention import CPU_CHUNK_SCORE_BYTES, attend, cpu_chunks


def _qkv(shape, seed=0):
    keys = jax.random.split(jax.random.key(seed), 3)
    return tuple(jax.random.normal(key, shape, jnp.float32) for key in keys)


def test_chunks_only_where_the_scores_outgrow_the_budget():
    assert CPU_CHUNK_SCORE_BYTES == 4 << 20
    assert cpu_chunks((32, 256, 4, 16)) == 8  # 1 MiB of scores a sequence: 4 per chunk
    assert cpu_chunks((512, 16, 4, 16)) == 1  # temporal attention: 2 MiB in all
    assert cpu_chunks((7, 1024, 4, 16)) == 7  # 16 MiB a sequence: one at a time
    assert cpu_chunks((30, 256, 4, 16)) == 10  # the next divisor of S at or above 30 / 4


@pytest.mark.parametrize("causal", [False, True])
def test_chunked_equals_plain_forward_and_backward(causal):
    q, k, v = _qkv((12, 32, 2, 8))
    w = jax.random.normal(jax.random.key(1), q.shape)

    def loss(chunks, q, k, v):
        return jnp.sum(w * attend(q, k, v, causal=causal, chunks=chunks))

    plain = jax.jit(jax.value_and_grad(lambda *a: loss(1, *a), argnums=(0, 1, 2)))(q, k, v)
    for chunks in (2, 3, 12):
        got = jax.jit(jax.value_and_grad(lambda *a, c=chunks: loss(c, *a), argnums=(0, 1, 2)))(
            q, k, v
        )
        np.testing.assert_allclose(got[0], plain[0], rtol=1e-5)
        for g_got, g_plain in zip(got[1], plain[1], strict=True):
            np.testing.assert_allclose(g_got, g_plain, atol=1e-5)
    with pytest.raises(ValueError, match="12 sequences do not split into 5 chunks"):
        attend(q, k, v, causal=causal, chunks=5)


def test_sharded_sequences_are_not_moved_between_devices():
    mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    q, k, v = _qkv((16, 32, 2, 8), seed=3)

    def grads(q, k, v):
        return jax.grad(lambda *a: jnp.sum(attend(*a, causal=False, chunks=2) ** 2), (0, 1, 2))(
            q, k, v
        )

    step = jax.jit(grads, in_shardings=(sharding,) * 3, out_shardings=(sharding,) * 3)
    placed = [jax.device_put(x, sharding) for x in (q, k, v)]
    hlo = step.lower(*placed).compile().as_text()
    for collective in ("all-gather", "all-to-all", "collective-permute", "all-reduce"):
        assert collective not in hlo
    for got, want in zip(step(*placed), jax.jit(grads)(q, k, v), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_the_budget_is_per_device_when_the_batch_is_split():
    import flax.linen as nn

    from genie_jax.train.sharding import rules_from_config

    axes = ("data", "fsdp", "tensor")
    for shape, shards in (((2, 1, 1), 2), ((2, 2, 2), 4), ((1, 1, 8), 1)):
        mesh = Mesh(np.array(jax.devices()[:8][: math.prod(shape)]).reshape(shape), axes)
        with jax.set_mesh(mesh), nn.logical_axis_rules(rules_from_config(None)):
            # 32 sequences of 1 MiB of scores: 4 a chunk on one device, 4 per device here.
            assert cpu_chunks((32, 256, 4, 16)) == 8 // shards


def test_the_accelerator_form_can_be_asked_for_on_cpu():
    from genie_jax.nn.attention import accelerator_attention

    with accelerator_attention():
        assert cpu_chunks((32, 256, 4, 16)) == 1
    assert cpu_chunks((32, 256, 4, 16)) == 8


def test_cudnn_only_for_long_half_precision_sequences_on_a_gpu(monkeypatch):
    from genie_jax.nn import attention

    bf16, f32 = jnp.bfloat16, jnp.float32
    assert attention.attention_kernel((32, 256, 8, 64), bf16) == "xla"  # this CPU
    monkeypatch.setattr(attention.jax, "default_backend", lambda: "gpu")
    assert attention.attention_kernel((32, 256, 8, 64), bf16) == "cudnn"  # spatial
    assert attention.attention_kernel((32, 256, 8, 64), jnp.float16) == "cudnn"
    assert attention.attention_kernel((9216, 16, 8, 64), bf16) == "xla"  # temporal: tiny scores
    assert attention.attention_kernel((32, 257, 8, 64), bf16) == "xla"  # + an action token
    assert attention.attention_kernel((32, 256, 8, 64), f32) == "xla"  # cuDNN needs bf16/fp16
    assert attention.attention_kernel((32, 256, 2, 12), bf16) == "xla"  # head size not 8k
    assert attention.attention_kernel((32, 256, 1, 256), bf16) == "xla"  # head size over 128
    with attention.attention_kernels("xla"):
        assert attention.attention_kernel((32, 256, 8, 64), bf16) == "xla"
    monkeypatch.setattr(attention.jax, "default_backend", lambda: "cpu")
    with attention.attention_kernels("cudnn"):
        assert attention.attention_kernel((32, 256, 8, 64), f32) == "cudnn"
    with (
        pytest.raises(ValueError, match="unknown attention kernel 'flash'"),
        attention.attention_kernels("flash"),
    ):
        pass
