"""The helper that turns jax's fatal distributed-runtime log into one line."""

from genie_jax.train.runtime_log import rewrite_chunks

# As jax 0.10 writes it when a peer stops sending heartbeats (shortened stack trace).
FATAL = (
    b"E1130 20:44:37.081052   19786 coordination_service_agent.cc:289] Polled an error from "
    b"coordination service (this can be an error from this or another task).\n"
    b"F1130 20:44:37.081093   19786 client.h:80] Terminating process because the JAX "
    b"distributed service detected fatal errors. This most likely indicates that another task "
    b"died; see the other task logs for more details. absl::Status: UNAVAILABLE: The following "
    b"tasks are unhealthy (stopped sending heartbeats):\n1\nThe tasks have crashed. Check the "
    b"task logs. [type.googleapis.com/tensorflow.CoordinationServiceError='']\n\n"
    b"RPC: /xla.coordination.CoordinationService/PollForError\n"
    b"*** Check failure stack trace: ***\n"
    b"    @     0x7f29cfe40634  absl::log_internal::LogMessage::SendToLog()\n"
    b"    @     0x7f29d7ca71f5  (unknown)\n"
)
PROGRESS = b"tokenizer:   0%| | 8/100000 [00:09<9:21:02, 2.97step/s, loss=0.2738]\rtokenizer: F"


def _run(stream: bytes, cuts: list[int]) -> str:
    """The helper's output for `stream` delivered in pieces cut at `cuts`."""
    bounds = [0, *cuts, len(stream)]
    chunks = [stream[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    out = []
    rewrite_chunks(iter(chunks), out.append, "genie train", "process 0 of 2")
    return b"".join(out).decode()


def test_ordinary_output_passes_through_unchanged_however_it_is_cut():
    stream = PROGRESS + b"\nFLOPs 12\nF1130 is not a log line\n" + PROGRESS
    for cuts in ([], [1], [len(PROGRESS) - 1], list(range(1, len(stream), 7))):
        assert _run(stream, cuts) == stream.decode()


def test_the_runtime_abort_log_becomes_one_line_at_the_end():
    stream = PROGRESS + FATAL
    start = stream.index(b"F1130")
    for cuts in ([], [start + 3], [start + 40], list(range(5, len(stream), 13))):
        out = _run(stream, cuts)
        assert out.startswith(stream[:start].decode())  # everything before, as it came
        tail = out[start:].strip()
        assert "\n" not in tail and "Check failure" not in tail and "0x7f" not in tail
        assert tail.startswith(
            "genie train: error: process 0 of 2 lost a peer (UNAVAILABLE: The following tasks "
            "are unhealthy (stopped sending heartbeats): 1); the run cannot go on"
        ), tail


def test_other_fatal_logs_are_left_as_they_are():
    other = b"F1130 20:44:37.081093   19786 dot_emitter.cc:12] Check failed: rank == 2\n@ 0x1\n"
    stream = PROGRESS + other
    assert _run(stream, [len(PROGRESS) + 10]) == stream.decode()
