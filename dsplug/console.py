"""The terminal a command writes to: native library noise filtered out, progress bars kept whole.

TensorFlow, absl and LiteRT write start-up and conversion notes (``I0000 ... port.cc] oneDNN
custom operations are on``, ``Could not find cuda drivers``, ``fully_quantize: 0, ...``, ``INFO:
Created TensorFlow Lite XNNPACK delegate``) from C++ straight to the process's stderr file
descriptor, so ``TF_CPP_MIN_LOG_LEVEL`` and Python's logging cannot stop them. :func:`terminal`
points file descriptor 2 at a pipe for the duration of a command; a thread forwards what arrives
there to the real stderr except lines of those known kinds. Python's own output (messages, logging,
tqdm bars) is written to the real stderr directly, and log lines go through tqdm so they never cut
a bar in half. matplotlib's "Glyph ... missing from font" warnings (class names in scripts the
figure font lacks) are filtered too. With ``--debug`` nothing is filtered.

Only the CLI uses this module.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator

logger = logging.getLogger(__name__)

#: Lines of native start-up and conversion notes (glog/absl prefixes and known chatter).
NOISE = re.compile(
    rb"^(?:[IWE]\d{4} \d\d:\d\d:\d\d[.\d]* +\d+ [\w.]+:\d+\]"  # absl/glog: I0000 00:00:17.9 1234 port.cc:153]
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    rb"|INFO: Initialized TensorFlow Lite runtime\."
    rb"|fully_quantize: \d+, inference_type: \d+"
    rb"|Estimated count of arithmetic ops:"
    rb"|\s*$)"
)


def _forward(source: int, target: int) -> None:
    """Copy lines from ``source`` to ``target`` (file descriptors), dropping :data:`NOISE` lines."""
    pending = b""
    while True:
        try:
            block = os.read(source, 65536)
        except OSError:
            block = b""
        if not block:
            break
        pending += block
        *lines, pending = pending.split(b"\n")
        kept = b"".join(line + b"\n" for line in lines if not NOISE.match(line))
        if kept:
            os.write(target, kept)
    if pending and not NOISE.match(pending):
        os.write(target, pending)
    os.close(source)


def _is_real_stderr() -> bool:
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # a captured stream (tests) has no descriptor
        return False


def quiet_finalizers(err: BaseException) -> None:
    """After a full disk, the writer's objects (an h5py file) repeat the complaint with a traceback
    when they are freed at exit: the command has said it in one line, so log those at debug level."""
    from dsplug.artifacts import is_disk_full

    if is_disk_full(err):
        sys.unraisablehook = lambda unraisable: logger.debug("ignored in %r: %s", unraisable.object, unraisable.exc_value)
        sys.excepthook = lambda kind, value, tb: logger.debug("after a full disk: %s: %s", kind.__name__, value)


def refusal(err: BaseException) -> str | None:
    """The one line for an error the machine raised rather than dsplug (a full disk, a denied or
    vanished path), or None for anything else (a bug)."""
    from dsplug.artifacts import disk_full_message, disk_full_path, is_disk_full

    if is_disk_full(err):
        return disk_full_message(disk_full_path(err))
    if isinstance(err, OSError):
        where = f"{err.filename}: " if err.filename else ""
        return f"{where}{err.strerror or err}; free space or fix the path, then run the command again"
    return None


@contextlib.contextmanager
def terminal(*, debug: bool) -> Iterator[None]:
    """Filter native noise from stderr and route log lines around progress bars, for one command.

    Parameters
    ----------
    debug : bool
        Leave stderr as it is (every native line shows), only route logging through tqdm.
    """
    from tqdm.contrib.logging import logging_redirect_tqdm

    if not debug:  # class names in scripts the figure font lacks (CJK, emoji) are drawn as boxes
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from (current )?font", category=UserWarning)
    if debug or not _is_real_stderr():
        with logging_redirect_tqdm():
            yield
        return
    sys.stderr.flush()
    real = os.dup(2)
    python_stderr = sys.stderr
    sys.stderr = io.TextIOWrapper(
        io.FileIO(os.dup(real), "w"), encoding=python_stderr.encoding or "utf-8",
        errors="backslashreplace", write_through=True,
    )
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler) and h.stream is python_stderr]
    for handler in handlers:
        handler.setStream(sys.stderr)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    thread = threading.Thread(target=_forward, args=(read, real), name="dsplug-stderr", daemon=True)
    thread.start()
    try:
        with logging_redirect_tqdm():
            yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # the pipe's last writer closes: the thread sees the end
        thread.join(timeout=5)
        for handler in handlers:
            handler.setStream(python_stderr)
        replaced, sys.stderr = sys.stderr, python_stderr
        replaced.close()
        os.close(real)
