"""One line instead of jax's C++ abort log when the distributed runtime ends a process.

When a peer of a multi-process run stops sending heartbeats (killed, hung, its host gone), jax's
coordination service ends every other process from a C++ thread: a fatal log line
(`F... client.h:...] Terminating process because the JAX distributed service detected fatal
errors ...`), a stack trace, SIGABRT. No Python code runs on that path (the client's error
callback cannot be replaced from Python), so the line has to be rewritten from outside.

`rewrite_fatal_runtime_log` forks a small helper before jax starts any thread and points the
process's stderr (fd 2) at a pipe to it. The helper copies everything through as it comes
(progress bars included) until a fatal log line of the distributed service appears; that line
and the rest (the stack trace) are held back. When the process has gone (the pipe closes), the
helper writes one line naming the status and the way out, and exits. Any other fatal log is
copied through unchanged. The process keeps its pid and its exit status (SIGABRT).
"""

import os
import re
import signal
from collections.abc import Callable, Iterable

# glog's fatal prefix: F<MMDD> <HH:MM:SS.micros> <thread> <file>:<line>]
_FATAL_LOG = re.compile(rb"F\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [\w./-]+:\d+\] ")
_LONGEST_PREFIX = 128  # longer than any such prefix: a tail this short may still become one
_RUNTIME = b"JAX distributed service"
LOST_PEER_HINT = (
    "the run cannot go on: start every process again and it resumes from the last checkpoint "
    "(`genie ckpt info --workdir W` shows which)"
)


def lost_peer_line(who: str, cause: str) -> str:
    """`<who> lost a peer (<cause>); <what to do>` (the error after `<command>: error: `)."""
    return f"{who} lost a peer ({cause}); {LOST_PEER_HINT}"


def rewrite_fatal_runtime_log(label: str, who: str) -> None:
    """Starts the helper (see the module docstring). `label` opens the line (`genie train`),
    `who` names this process (`process 1 of 2`). Call before jax is imported. Where there is
    no fork (Windows), jax's log stays as it is."""
    if not hasattr(os, "fork"):
        return
    read_fd, write_fd = os.pipe()
    if os.fork() == 0:  # the helper: reads the pipe until the process is gone
        os.close(write_fd)
        os.close(0)
        os.close(1)  # a caller reading the command's stdout to its end must not wait for us
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # outlive the process: it may still write
        try:
            chunks = iter(lambda: os.read(read_fd, 65536), b"")
            rewrite_chunks(chunks, lambda data: _write(2, data), label, who)
        finally:
            os._exit(0)
    os.close(read_fd)
    os.dup2(write_fd, 2)
    os.close(write_fd)


def rewrite_chunks(
    chunks: Iterable[bytes], write: Callable[[bytes], None], label: str, who: str
) -> None:
    """Copies `chunks` (a stream cut anywhere) to `write`, a distributed-service fatal log
    replaced by one line at the end (see the module docstring)."""
    held = bytearray()  # from a fatal log line on: the line and everything after it
    pending = b""  # a tail that might be the start of a fatal log line cut by the read
    for chunk in chunks:
        if held:
            held += chunk
            continue
        data = pending + chunk
        found = _FATAL_LOG.search(data)
        if found:
            write(data[: found.start()])
            held += data[found.start() :]
            pending = b""
            continue
        cut = data.rfind(b"F", max(0, len(data) - _LONGEST_PREFIX))
        cut = len(data) if cut < 0 else cut
        write(data[:cut])
        pending = data[cut:]
    if held and _RUNTIME in held:
        write(f"\n{label}: error: {lost_peer_line(who, _status(held))}\n".encode())
    else:
        write(pending + bytes(held))


def _status(held: bytes) -> str:
    """The status the fatal log reports (`UNAVAILABLE: The following tasks are unhealthy ...`),
    on one line."""
    text = held.decode(errors="replace")
    status = text.split("absl::Status:", 1)[1] if "absl::Status:" in text else text
    lines = status.split("*** Check failure", 1)[0].split("[type.googleapis", 1)[0].split("\n")
    return " ".join(line.strip() for line in lines[:2] if line.strip()).rstrip(":")


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
