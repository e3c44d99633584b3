"""Fitting in a child process: cancellable at any point and bounded in memory.

The backend forks. The child sees the training data copy-on-write (nothing is serialized to
it), runs the work it is given under a memory limit (``RLIMIT_DATA``), and sends back JSON and
raw bytes (model artifacts: LightGBM text, skops; never pickles) over a pipe. The backend
waits on the pipe, relays the child's progress messages, and calls a cancellation check
(an SPI ``SELECT``: statement_timeout, pg_cancel_backend) every :data:`TICK` seconds. On any
way out of the wait, the child is killed and reaped: no zombie, no orphan.

The child never calls plpy or runs SQL, closes every inherited file descriptor but its pipe
(the client socket, the backend's files), restores the default handlers of the signals
PostgreSQL catches (the postmaster and pg_signal_backend signal the backend's whole process
group, so a cancel or a shutdown reaches the child too), dies with its parent
(``PR_SET_PDEATHSIG``), and leaves only through ``os._exit``.

Framing on the pipe: a 4-byte big-endian length, a JSON header of that length, then the raw
blobs whose sizes the header lists under ``"blobs"``.

A work may hand over part of its result before it ends (:func:`share`): the fitted model,
while the child goes on converting it to ONNX. :func:`start` gives the backend a
:class:`Child` to take the shared part first (:meth:`Child.first`) and the rest later
(:meth:`Child.rest`), doing its own work in between; :func:`run` waits for both.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import select
import signal
import struct
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from pyml import errors
from pyml.errors import OutOfMemory, PymlError

TICK = 0.1  # seconds between two cancellation checks while the child works
SETTING = "pyml.train_memory_limit"
# A child killed by a signal after using this share of its limit is taken to have run out of
# memory (some native code aborts, rather than fails cleanly, when an allocation is refused).
NEAR_LIMIT = 0.8

Work = Callable[[Callable[[str], None]], tuple[dict[str, Any], Sequence[bytes]]]

_HEADER = struct.Struct(">I")
_OOM_EXIT = 3  # the child ran out of memory and could not even say so
_PR_SET_PDEATHSIG = 1
_F_SETPIPE_SZ = 1031
_PIPE_SIZE = 1 << 20
# The signals a backend catches; the child needs the defaults (SIGINT, SIGTERM, SIGQUIT from
# the postmaster or pg_signal_backend end it at once).
_RESET = (
    "SIGINT",
    "SIGTERM",
    "SIGQUIT",
    "SIGUSR1",
    "SIGUSR2",
    "SIGALRM",
    "SIGHUP",
    "SIGPIPE",
    "SIGCHLD",
)
_OPENMP = ("libgomp", "libomp", "libiomp")


class Limit(NamedTuple):
    """The memory a fit may use, and what to call it in messages."""

    bytes: int
    notice: str | None = None  # why the session's value was not used, when it was not


def memory_limit(server: int | None, session: int | None, physical: int | None = None) -> Limit:
    """The limit of ``pyml.train_memory_limit``: the server configuration's value (else a
    quarter of the machine's physical memory, or of the container's memory limit), lowered
    but never raised by the session's."""
    if server is None:
        server = (physical if physical is not None else physical_memory()) // 4
    if session is None or session == server:
        return Limit(server)
    if session < server:
        return Limit(session)
    return Limit(
        server,
        f'pyml: setting "{SETTING}" of this session ({size_text(session)}) is '
        f"above the server's limit; using {size_text(server)}",
    )


def physical_memory() -> int:
    """The machine's memory, or the container's (cgroup) limit when that is lower."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            with open(path) as limit:
                memory = min(memory, int(limit.read().strip()))  # "max": no limit
    return memory


def size_text(n: int) -> str:
    """``n`` bytes as PostgreSQL's ``pg_size_pretty`` would say it, roughly: ``512 MB``."""
    for unit, name in ((1 << 40, "TB"), (1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "kB")):
        if n >= unit:
            return f"{n // unit} {name}" if n % unit == 0 else f"{n / unit:.1f} {name}"
    return f"{n} bytes"


def run(
    work: Work, *, check: Callable[[], None], notice: Callable[[str], None], limit: Limit | None
) -> tuple[dict[str, Any], list[bytes]]:
    """Run ``work(progress)`` in a child process; return what it returns (a JSON-able dict
    and byte strings), with what it shared before (:func:`share`): the dicts merged (the
    result's keys win), the shared byte strings first.

    ``progress(message)`` in the child becomes ``notice(message)`` here. ``check()`` is
    called every :data:`TICK` seconds and when the child dies; whatever it raises ends the
    child and propagates. A :class:`~pyml.errors.PymlError` raised in the child is raised here
    (same class, message, detail and hint); running out of memory is
    :class:`~pyml.errors.OutOfMemory`; anything else is an internal error (XX000) with the
    child's traceback in DETAIL.
    """
    with start(work, check=check, notice=notice, limit=limit) as child:
        first, first_blobs = child.first()
        rest, rest_blobs = child.rest()
    return {**first, **rest}, [*first_blobs, *rest_blobs]


def share(value: dict[str, Any], blobs: Sequence[bytes] = ()) -> bool:
    """In the child of :func:`start`: hand ``value`` and ``blobs`` to the backend now, before
    the work ends (:meth:`Child.first`), and return True. Anywhere else (a work called
    directly) send nothing and return False: the work returns everything itself."""
    if _shared_fd is None:
        return False
    _send(_shared_fd, {"kind": "shared", "value": value}, blobs)
    return True


_shared_fd: int | None = None  # in a child: the pipe share() writes to


class Child:
    """A work running in a child process (see :func:`start`). Leaving the ``with`` block
    ends the child however it is left (killed if it has not finished) and reaps it."""

    def __init__(self, waiter: _Waiter, check: Callable[[], None], limit: Limit | None):
        self._waiter, self._check, self._limit = waiter, check, limit
        self._first_taken = False

    def first(self) -> tuple[dict[str, Any], list[bytes]]:
        """What the work shared (:func:`share`); its result when it shared nothing (then
        :meth:`rest` is empty)."""
        self._first_taken = True
        shared = self._waiter.wait(self._check, self._limit, shared=True)
        return shared if shared is not None else self._waiter.result()

    def rest(self) -> tuple[dict[str, Any], list[bytes]]:
        """The work's result, after what it shared: empty when it shared nothing."""
        if not self._first_taken:
            raise AssertionError("Child.rest() before Child.first()")
        if self._waiter.shared is None:
            return {}, []
        self._waiter.wait(self._check, self._limit)
        return self._waiter.result()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self._waiter.close()


def start(
    work: Work, *, check: Callable[[], None], notice: Callable[[str], None], limit: Limit | None
) -> Child:
    """Start ``work(progress)`` in a child process (as :func:`run` does); use the result in
    a ``with`` block: ``with start(...) as child: child.first() ... child.rest()``."""
    pause_openmp()
    read_fd, write_fd = os.pipe()  # frames
    crash_read, crash_write = os.pipe()  # where a crash of the child's native code happened
    with contextlib.suppress(OSError):  # fewer, larger reads of big artifacts
        import fcntl

        fcntl.fcntl(write_fd, _F_SETPIPE_SZ, _PIPE_SIZE)
    parent, base = os.getpid(), _status(os.getpid())
    try:
        pid = os.fork()
    except OSError as exc:
        for fd in (read_fd, write_fd, crash_read, crash_write):
            os.close(fd)
        raise PymlError("could not start the fitting process", detail=str(exc)) from exc
    if pid == 0:  # the child: never returns
        code = 1
        try:
            _detach(parent, keep=(write_fd, crash_write))
            code = _child(work, write_fd, crash_write, limit)
        finally:
            os._exit(code)
    os.close(write_fd)
    os.close(crash_write)
    return Child(_Waiter(pid, read_fd, crash_read, notice, base), check, limit)


# ---------------------------------------------------------------------------
# The backend's side
# ---------------------------------------------------------------------------


class _Waiter:
    def __init__(
        self, pid: int, fd: int, crash_fd: int, notice: Callable[[str], None], base: dict[str, int]
    ):
        self.pid, self.fd, self.crash_fd, self.notice = pid, fd, crash_fd, notice
        self.base = base  # the backend's VmData and VmRSS at the fork (bytes)
        self.peak = 0  # the child's largest VmData growth seen
        self.frames = _Frames()
        self.shared: tuple[dict[str, Any], list[bytes]] | None = None  # see share()
        self.outcome: dict[str, Any] | None = None
        self.blobs: list[bytes] = []
        self.status: tuple[int, Any] | None = None  # (wait status, rusage) once reaped
        self.closed = False

    def wait(
        self, check: Callable[[], None], limit: Limit | None, shared: bool = False
    ) -> tuple[dict[str, Any], list[bytes]] | None:
        """Wait for the work's outcome (with ``shared``: or for what it shared first, which
        is returned); raise its failure."""
        checked = time.monotonic()
        while self.outcome is None and not (shared and self.shared is not None):
            ready, _, _ = select.select([self.fd], [], [], TICK)
            if ready:
                chunk = os.read(self.fd, _PIPE_SIZE)
                if not chunk:
                    break  # the child closed its end: it is gone (or about to be)
                for header, blobs in self.frames.feed(chunk):
                    self._frame(header, blobs)
            self._sample()
            if time.monotonic() - checked >= TICK:
                check()
                checked = time.monotonic()
        if shared and self.shared is not None:
            return self.shared
        if self.outcome is not None and self.outcome["kind"] == "result":
            return None
        self.reap(kill=False)
        check()  # a cancel also kills the child (SIGINT to the process group): say 57014
        raise self._failure(limit)

    def result(self) -> tuple[dict[str, Any], list[bytes]]:
        assert self.outcome is not None and self.outcome["kind"] == "result"
        return self.outcome["value"], self.blobs

    def _frame(self, header: dict[str, Any], blobs: list[bytes]) -> None:
        if header["kind"] == "progress":
            self.notice(header["message"])
        elif header["kind"] == "shared" and self.shared is None:
            self.shared = header["value"], blobs
        else:
            self.outcome, self.blobs = header, blobs

    def close(self) -> None:
        """End the child (it has nothing left to do, or is not wanted any more), reap it,
        close the pipes."""
        if self.closed:
            return
        self.closed = True
        os.close(self.fd)
        try:
            self.reap()
        finally:
            os.close(self.crash_fd)

    def _sample(self) -> None:
        data = _status(self.pid).get("VmData")
        if data is not None:
            self.peak = max(self.peak, data - self.base.get("VmData", 0))

    def reap(self, kill: bool = True) -> None:
        """Wait for the child's end: killed at once, or (``kill`` false: it has sent its
        outcome or closed its pipe, so it is leaving) after a second at most."""
        if self.status is not None:
            return
        if not kill:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                with contextlib.suppress(InterruptedError):
                    pid, status, usage = os.wait4(self.pid, os.WNOHANG)
                    if pid:
                        self.status = (status, usage)
                        return
                time.sleep(0.005)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        while True:
            try:
                _, status, usage = os.wait4(self.pid, 0)
            except InterruptedError:
                continue
            except ChildProcessError:  # reaped elsewhere (cannot happen in a backend)
                self.status = (0, None)
                return
            break
        self.status = (status, usage)

    def _failure(self, limit: Limit | None) -> PymlError:
        outcome = self.outcome or {}
        kind = outcome.get("kind")
        if kind == "error":
            return _rebuilt(outcome)
        if kind == "memory":
            return _out_of_memory(limit, outcome["detail"])
        if kind == "crash":
            return PymlError(
                f"unexpected error in the fitting process: {outcome['error']}",
                detail=outcome["traceback"],
            )
        status, usage = self.status or (0, None)
        growth = self.peak
        if usage is not None:  # ru_maxrss is in kilobytes
            growth = max(growth, usage.ru_maxrss * 1024 - self.base.get("VmRSS", 0))
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == _OOM_EXIT:
            return _out_of_memory(limit, "The fitting process could not allocate memory.")
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            name = _signal_name(number)
            used = f"It had used at least {size_text(max(growth, 0))}" + (
                f" of the {size_text(limit.bytes)} allowed." if limit is not None else "."
            )
            if limit is not None and growth >= NEAR_LIMIT * limit.bytes:
                return _out_of_memory(
                    limit, f"The fitting process was killed by signal {number} ({name}). {used}"
                )
            crash = self._crash_report()
            return PymlError(
                f"the fitting process was killed by signal {number} ({name})",
                detail=used + (f"\n{crash}" if crash else ""),
                hint=(
                    f'Some libraries crash when they are refused memory: a larger "{SETTING}" '
                    "or smaller hyperparameters may help."
                )
                if limit is not None
                else None,
            )
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
        return PymlError(f"the fitting process exited with code {code} without a result")

    def _crash_report(self) -> str:
        """What faulthandler wrote when the (reaped) child crashed: its Python stacks."""
        chunks: list[bytes] = []
        with contextlib.suppress(OSError):
            while len(chunks) < 16:
                ready, _, _ = select.select([self.crash_fd], [], [], 0)
                chunk = os.read(self.crash_fd, 4096) if ready else b""
                if not chunk:
                    break
                chunks.append(chunk)
        text = b"".join(chunks).decode(errors="replace")
        return text.split("\nExtension modules:")[0].strip()  # the stacks, not the module list


class _Frames:
    """Splits the bytes read from the pipe into frames: (JSON header, blobs)."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, chunk: bytes) -> Iterator[tuple[dict[str, Any], list[bytes]]]:
        self.buffer += chunk
        while len(self.buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self.buffer)
            end = _HEADER.size + length
            if len(self.buffer) < end:
                return
            header = json.loads(bytes(self.buffer[_HEADER.size : end]))
            sizes = header.pop("blobs", [])
            if len(self.buffer) < end + sum(sizes):
                return
            blobs = []
            with memoryview(self.buffer) as view:
                for size in sizes:
                    blobs.append(bytes(view[end : end + size]))
                    end += size
            del self.buffer[:end]
            yield header, blobs


def _rebuilt(outcome: dict[str, Any]) -> PymlError:
    """The child's :class:`PymlError`, as the same class from :mod:`pyml.errors`."""
    cls = getattr(errors, outcome["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, PymlError)):
        cls = PymlError
    error = cls(outcome["message"], detail=outcome["detail"], hint=outcome["hint"])
    if error.sqlstate != outcome["sqlstate"]:  # a subclass defined outside pyml.errors
        error.sqlstate = outcome["sqlstate"]
    return error


def _out_of_memory(limit: Limit | None, detail: str) -> OutOfMemory:
    allowed = f" ({size_text(limit.bytes)})" if limit is not None else ""
    return OutOfMemory(f'training used more memory than "{SETTING}" allows{allowed}', detail=detail)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def _status(pid: int) -> dict[str, int]:
    """VmData and VmRSS of process ``pid`` in bytes (empty once it is gone)."""
    found = {}
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith((b"VmData:", b"VmRSS:")):
                    key, value = line.split(b":", 1)
                    found[key.decode()] = int(value.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return found


def pause_openmp() -> None:
    """Stop the threads of every OpenMP runtime loaded in this process.

    libgomp hangs in a forked child when the parent has used OpenMP (its thread pool is not
    in the child). ``omp_pause_resource_all(omp_pause_hard)`` releases the pool; the next
    parallel region here starts new threads. The system libgomp (LightGBM) and the copy
    scikit-learn vendors are separate runtimes: each is paused.
    """
    paths = set()
    with open("/proc/self/maps") as maps:
        text = maps.read()
    for line in text.splitlines():
        if "omp" in line:  # a cheap filter: a backend maps hundreds of files
            path = line.split(maxsplit=5)[-1]
            if os.path.basename(path).startswith(_OPENMP) and ".so" in path:
                paths.add(path)
    for path in sorted(paths):
        try:
            pause = ctypes.CDLL(path).omp_pause_resource_all
        except (OSError, AttributeError):  # a runtime older than OpenMP 5.0
            continue
        pause.argtypes = [ctypes.c_int]
        pause(2)  # omp_pause_hard


# ---------------------------------------------------------------------------
# The child's side
# ---------------------------------------------------------------------------


def _child(work: Work, write_fd: int, crash_fd: int, limit: Limit | None) -> int:
    """Run ``work`` and send its outcome; the exit code."""
    import faulthandler

    global _shared_fd

    faulthandler.enable(file=crash_fd, all_threads=True)
    if limit is not None:
        _limit_memory(limit.bytes)
    _shared_fd = write_fd
    try:
        with _threads_only():
            value, blobs = work(
                lambda message: _send(write_fd, {"kind": "progress", "message": message})
            )
        _send(write_fd, {"kind": "result", "value": value}, blobs)
        return 0
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the backend
        return _report(write_fd, exc)


def _detach(parent: int, keep: Sequence[int]) -> None:
    """Die with the backend, take the default signal handlers, and close every inherited
    descriptor but 0-2 and ``keep``."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the backend died before prctl: nobody waits for us
        os._exit(1)
    for name in _RESET:
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, max(resource.getrlimit(resource.RLIMIT_NOFILE)[0], low))


def _limit_memory(limit: int) -> None:
    """Heap and private mappings (not PostgreSQL's shared memory) may grow by ``limit``."""
    data = _status(os.getpid()).get("VmData", 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    value = data + limit
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (value, value))


def _threads_only() -> contextlib.AbstractContextManager[Any]:
    """joblib (scikit-learn's n_jobs) with threads: worker processes would escape the
    child's memory limit and outlive a kill."""
    try:
        import joblib
    except ImportError:
        return contextlib.nullcontext()
    return joblib.parallel_config(backend="threading")  # type: ignore[no-any-return]


def _send(fd: int, header: dict[str, Any], blobs: Sequence[bytes] = ()) -> None:
    head = json.dumps({**header, "blobs": [len(b) for b in blobs]}).encode()
    _write(fd, _HEADER.pack(len(head)) + head)
    for blob in blobs:
        _write(fd, blob)


def _write(fd: int, data: bytes) -> None:
    with memoryview(data) as view:
        while view:
            written = os.write(fd, view)
            view = view[written:]


def _report(fd: int, exc: BaseException) -> int:
    """Send what went wrong; the exit code."""
    try:
        if _memory_error(exc):
            text = _one_line(exc)
            traceback.clear_frames(exc.__traceback__)  # let the big arrays go
            _send(
                fd,
                {
                    "kind": "memory",
                    "detail": f"The fitting process could not allocate memory ({text}).",
                },
            )
        elif isinstance(exc, PymlError):
            _send(
                fd,
                {
                    "kind": "error",
                    "class": type(exc).__name__,
                    "message": exc.message,
                    "detail": exc.detail,
                    "hint": exc.hint,
                    "sqlstate": exc.sqlstate,
                },
            )
        else:
            text = "".join(traceback.format_exception(exc)).rstrip()
            _send(fd, {"kind": "crash", "error": _one_line(exc), "traceback": text})
        return 0
    except MemoryError:
        return _OOM_EXIT
    except BaseException:  # noqa: BLE001 - the backend sees the exit code
        return 2


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _memory_error(exc: BaseException | None) -> bool:
    """A refused allocation: MemoryError, or C++'s std::bad_alloc as a library reports it
    (LightGBM's wrapper raises it as LightGBMError), anywhere in the chain of causes."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, MemoryError) or "bad_alloc" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False
