"""Keep TensorFlow's start-up chatter off a command-line user's terminal (``--verbose`` keeps it).

TensorFlow talks on four channels, and each needs its own switch, set before it is imported:
its C++ log (``TF_CPP_MIN_LOG_LEVEL``), gRPC's (``GRPC_VERBOSITY``), Python's ``logging`` and
``absl.logging``. A fifth ignores all of them: lines Abseil's C++ log writes straight to the
process's stderr before TensorFlow initialises it ("All log messages before
absl::InitializeLog() is called are written to STDERR", oneDNN, "Could not find cuda drivers",
"failed call to cuInit" on a machine without a GPU). Those lines carry the date ``0000 00:00``,
so a filter on file descriptor 2 drops exactly them and passes everything else through.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from contextlib import contextmanager
from typing import Iterator, MutableMapping

#: The environment that quiets TensorFlow's own logs (C++ INFO and WARNING, gRPC below ERROR).
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "GRPC_VERBOSITY": "ERROR"}

#: A line Abseil logs before its log is initialised (date 0000 00:00), the banner that announces
#: them, and the second line of TensorFlow's CPU-instructions notice.
PRE_INIT_NOISE = re.compile(
    rb"^(?:[IWE]0000 00:00:\d+\.\d+\s+\d+ \S+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|To enable the following instructions: )"
)


def quiet_environment(env: MutableMapping[str, str] | None = None) -> None:
    """Set the variables that quiet TensorFlow and gRPC in this process and its children,
    keeping any value the user set."""
    env = os.environ if env is None else env
    for name, value in QUIET_ENV.items():
        env.setdefault(name, value)


@contextmanager
def quiet_tensorflow(verbose: bool = False) -> Iterator[None]:
    """Within this block TensorFlow prints nothing but real errors; with ``verbose``, everything."""
    if verbose:
        yield
        return
    quiet_environment()
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging  # installed with TensorFlow

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
    if not _is_process_stderr():
        yield
        return
    with _drop_pre_init_lines():
        yield


def _is_process_stderr() -> bool:
    try:
        return sys.stderr is sys.__stderr__ and sys.stderr is not None and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


@contextmanager
def _drop_pre_init_lines() -> Iterator[None]:
    """Route file descriptor 2 through a thread that drops ``PRE_INIT_NOISE`` lines. Python's own
    ``sys.stderr`` writes to the original stream directly, so it stays a terminal (the progress
    bar checks) and is never delayed."""
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    encoding = getattr(sys.__stderr__, "encoding", None) or "utf-8"
    python_stderr = open(os.dup(original), "w", encoding=encoding, errors="backslashreplace", buffering=1)
    sys.stderr = python_stderr
    pump = threading.Thread(target=_pass_through, args=(read_end, original), name="gtpred-stderr-filter", daemon=True)
    pump.start()
    try:
        yield
    finally:
        python_stderr.flush()
        sys.stderr = sys.__stderr__
        os.dup2(original, 2)  # closes the pipe's last write end here: the pump sees its end
        pump.join(timeout=2)  # a child process may still hold the pipe; never wait on it
        python_stderr.close()
        if not pump.is_alive():  # else it may still write there: leave it open until exit
            os.close(original)


def _pass_through(read_end: int, out: int) -> None:
    pending = b""
    try:
        while chunk := os.read(read_end, 65536):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if not PRE_INIT_NOISE.match(line):
                    os.write(out, line + b"\n")
        if pending and not PRE_INIT_NOISE.match(pending):
            os.write(out, pending)
    except OSError:
        pass
    finally:
        os.close(read_end)
