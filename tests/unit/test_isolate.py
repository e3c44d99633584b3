"""The fitting runner (pyml.server._isolate) on its own: no database, the check is a function."""

from __future__ import annotations

import os
import resource
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from pyml.errors import InvalidParameterValue, OutOfMemory, PymlError
from pyml.server import _isolate
from pyml.server._isolate import Limit, memory_limit, size_text

MB = 1 << 20
LIMIT = Limit(512 * MB)


class Cancelled(Exception):
    """What the check raises (QueryCanceled in a backend)."""


def children() -> list[int]:
    """Processes whose parent is this one (zombies included)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            found.append(int(entry))
    return found


@pytest.fixture(autouse=True)
def no_child_left() -> Iterator[None]:
    before = children()
    yield
    assert children() == before


def run(
    work: Callable[[Callable[[str], None]], tuple[dict[str, Any], Sequence[bytes]]],
    check: Callable[[], None] = lambda: None,
    limit: Limit | None = LIMIT,
    notices: list[str] | None = None,
) -> tuple[dict[str, Any], list[bytes]]:
    return _isolate.run(
        work, check=check, notice=(notices if notices is not None else []).append, limit=limit
    )


def test_returns_json_and_bytes() -> None:
    big = np.random.default_rng(0).bytes(5 * MB)  # larger than the pipe: read while written

    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        return {"pid": os.getpid(), "x": [1, 2.5, None]}, [b"", b"abc", big]

    value, blobs = run(work)
    assert value["x"] == [1, 2.5, None] and value["pid"] != os.getpid()
    assert blobs == [b"", b"abc", big]


def test_progress_becomes_notices_in_order() -> None:
    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        for i in range(50):
            progress(f"step {i}")
        return {}, []

    notices: list[str] = []
    run(work, notices=notices)
    assert notices == [f"step {i}" for i in range(50)]


def test_pyml_error_comes_back_as_itself() -> None:
    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        raise InvalidParameterValue('bad "x"', detail="The detail.", hint="The hint.")

    with pytest.raises(InvalidParameterValue) as caught:
        run(work)
    error = caught.value
    assert (error.message, error.detail, error.hint, error.sqlstate) == (
        'bad "x"',
        "The detail.",
        "The hint.",
        "22023",
    )


def test_unknown_error_is_internal_with_traceback() -> None:
    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        raise KeyError("nope")

    with pytest.raises(PymlError) as caught:
        run(work)
    assert type(caught.value) is PymlError and caught.value.sqlstate == "XX000"
    assert caught.value.message == "unexpected error in the fitting process: KeyError: 'nope'"
    assert "Traceback" in (caught.value.detail or "") and "in work" in (caught.value.detail or "")


def test_memory_error_is_53200() -> None:
    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        raise MemoryError("std::bad_alloc")

    with pytest.raises(OutOfMemory) as caught:
        run(work, limit=Limit(150 * MB))
    assert caught.value.sqlstate == "53200"
    assert caught.value.message == (
        'training used more memory than "pyml.train_memory_limit" allows (150 MB)'
    )


def test_bad_alloc_from_a_library_is_53200() -> None:
    class LightGBMError(Exception):
        pass

    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        try:
            raise LightGBMError("std::bad_alloc")
        except LightGBMError as exc:
            raise InvalidParameterValue("wrapped") from exc

    with pytest.raises(OutOfMemory):
        run(work)


def test_allocating_past_the_limit_is_53200() -> None:
    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        kept = [np.ones(10 * MB // 8) for _ in range(20)]  # 200 MB, touched
        return {"n": len(kept)}, []

    with pytest.raises(OutOfMemory) as caught:
        run(work, limit=Limit(100 * MB))
    assert "could not allocate memory (MemoryError" in (caught.value.detail or "")
    # the same work fits under a larger limit
    assert run(work, limit=Limit(400 * MB))[0] == {"n": 20}


def test_the_limit_is_on_the_child_only() -> None:
    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        return {"limit": resource.getrlimit(resource.RLIMIT_DATA)[0]}, []

    mine = resource.getrlimit(resource.RLIMIT_DATA)
    value, _ = run(work, limit=Limit(100 * MB))
    assert value["limit"] != resource.RLIM_INFINITY
    assert 100 * MB < value["limit"] <= _isolate._status(os.getpid())["VmData"] + 200 * MB
    assert resource.getrlimit(resource.RLIMIT_DATA) == mine


def test_killed_by_a_signal_is_internal_error() -> None:
    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        os.kill(os.getpid(), signal.SIGKILL)
        return {}, []

    with pytest.raises(PymlError) as caught:
        run(work)
    assert type(caught.value) is PymlError
    assert caught.value.message == "the fitting process was killed by signal 9 (SIGKILL)"


def test_killed_near_the_limit_is_53200() -> None:
    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        kept = np.ones(90 * MB // 8)  # an abort after a large allocation (as in C++ code)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGABRT if kept.any() else signal.SIGKILL)
        return {}, []

    with pytest.raises(OutOfMemory) as caught:
        run(work, limit=Limit(100 * MB))
    assert "signal 6 (SIGABRT)" in (caught.value.detail or "")


def test_a_native_crash_says_where() -> None:
    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        import ctypes

        ctypes.string_at(0)  # a segmentation fault in native code
        return {}, []

    with pytest.raises(PymlError) as caught:
        run(work, limit=Limit(100 * MB))
    error = caught.value
    assert error.message == "the fitting process was killed by signal 11 (SIGSEGV)"
    assert "of the 100 MB allowed" in (error.detail or "")
    assert "Segmentation fault" in (error.detail or "") and "in work" in (error.detail or "")
    assert "pyml.train_memory_limit" in (error.hint or "")


def test_exit_without_result() -> None:
    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        os._exit(5)

    with pytest.raises(PymlError, match="exited with code 5 without a result"):
        run(work)


def test_cancel_kills_the_child_at_once() -> None:
    started = time.monotonic()
    pids: list[str] = []

    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        progress(str(os.getpid()))
        while True:  # an endless fit, in Python or in native code
            pass

    def check() -> None:
        if time.monotonic() - started > 0.5:
            raise Cancelled

    with pytest.raises(Cancelled):
        run(work, check=check, notices=pids)
    assert time.monotonic() - started < 2
    assert not os.path.exists(f"/proc/{pids[0]}")  # killed and reaped


def test_cancel_wins_over_the_childs_death(tmp_path: Any) -> None:
    """A cancel in a backend also signals the child (SIGINT to the process group): the check
    runs after the child's death is seen, before it is reported, so the caller sees the
    cancel."""
    marker = tmp_path / "cancelled"

    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        marker.touch()  # the cancel request, as the backend's signal handler records it
        os.kill(os.getpid(), signal.SIGINT)
        return {}, []

    def check() -> None:
        if marker.exists():
            raise Cancelled

    with pytest.raises(Cancelled):
        run(work, check=check)
    marker.unlink()
    with pytest.raises(PymlError, match=r"signal 2 \(SIGINT\)"):  # without a cancel request
        run(work, check=lambda: None)


def test_child_detaches_from_the_parent(tmp_path: Any) -> None:
    kept = open(tmp_path / "file", "w")  # a descriptor of the parent's (the client socket)
    fd = kept.fileno()
    previous = signal.signal(signal.SIGUSR1, lambda *_: None)
    try:

        def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
            return {
                "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
                "usr1": signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL,
            }, []

        value, _ = run(work)
    finally:
        signal.signal(signal.SIGUSR1, previous)
        kept.close()
    assert value["usr1"]
    assert fd not in value["fds"]
    assert len([fd for fd in value["fds"] if fd > 2]) <= 3  # two pipes, and listdir's own


def test_child_dies_with_its_parent() -> None:
    """A killed backend leaves no fitting orphan (PR_SET_PDEATHSIG)."""
    read_fd, write_fd = os.pipe()
    middle = os.fork()
    if middle == 0:  # a stand-in for the backend: relays the child's pid, then waits
        try:
            os.close(read_fd)

            def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
                progress(str(os.getpid()))
                time.sleep(60)
                return {}, []

            def notice(message: str) -> None:
                os.write(write_fd, message.encode())

            _isolate.run(work, check=lambda: None, notice=notice, limit=None)
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        child = int(os.read(read_fd, 100).decode())
    finally:
        os.close(read_fd)
    assert not _gone(child, seconds=0.2)  # fitting
    os.kill(middle, signal.SIGKILL)
    os.waitpid(middle, 0)
    assert _gone(child)


def _gone(pid: int, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_openmp_after_the_parent_used_it() -> None:
    """libgomp hangs in a forked child when the parent used it; the runner pauses it."""
    import lightgbm
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    X = rng.random((5000, 5))
    y = X[:, 0] * 3 + rng.random(5000)
    lightgbm.LGBMRegressor(n_estimators=10, verbose=-1).fit(X, y).predict(X)
    HistGradientBoostingRegressor(max_iter=10).fit(X, y).predict(X)

    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        a = lightgbm.LGBMRegressor(n_estimators=20, verbose=-1).fit(X, y)
        b = HistGradientBoostingRegressor(max_iter=20).fit(X, y)
        return {}, [a.booster_.model_to_string().encode(), b.predict(X[:3]).tobytes()]

    started = time.monotonic()
    _, (text, predicted) = run(work, check=lambda: _deadline(started, 30))
    here = lightgbm.LGBMRegressor(n_estimators=20, verbose=-1).fit(X, y)
    assert text == here.booster_.model_to_string().encode()  # the same model as in-process
    assert np.frombuffer(predicted).tolist() == (
        HistGradientBoostingRegressor(max_iter=20).fit(X, y).predict(X[:3]).tolist()
    )


def _deadline(started: float, seconds: float) -> None:
    if time.monotonic() - started > seconds:
        raise Cancelled("the child hung")


def test_joblib_uses_threads_in_the_child() -> None:
    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        from joblib import Parallel, delayed

        pids = Parallel(n_jobs=2)(delayed(os.getpid)() for _ in range(4))
        return {"pids": pids, "me": os.getpid()}, []

    value, _ = run(work)
    assert set(value["pids"]) == {value["me"]}


def test_memory_limit_setting() -> None:
    gb = 1 << 30
    assert memory_limit(None, None, physical=16 * gb) == Limit(4 * gb)
    assert memory_limit(2 * gb, None) == Limit(2 * gb)
    assert memory_limit(2 * gb, 150 * MB) == Limit(150 * MB)
    raised = memory_limit(2 * gb, 4 * gb)
    assert raised.bytes == 2 * gb
    assert raised.notice == (
        'pyml: setting "pyml.train_memory_limit" of this session (4 GB) '
        "is above the server's limit; using 2 GB"
    )
    assert memory_limit(None, 8 * gb, physical=16 * gb).bytes == 4 * gb


def test_size_text() -> None:
    assert [size_text(n) for n in (512, 2048, 150 * MB, 1536 * MB, 1 << 40)] == [
        "512 bytes",
        "2 kB",
        "150 MB",
        "1.5 GB",
        "1 TB",
    ]


# -- a result in two steps: share() then the rest ------------------------------------------


def test_shared_part_comes_first_then_the_rest(tmp_path: Any) -> None:
    """The backend has what the work shared while the work goes on (here: until the backend
    says, through a file, that it got the first part)."""
    got = tmp_path / "got"

    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        assert _isolate.share({"model": 1}, [b"model bytes"])
        deadline = time.monotonic() + 10
        while not got.exists():  # the rest waits until the backend has the first part
            if time.monotonic() > deadline:
                return {"waited": False}, []
            time.sleep(0.01)
        return {"onnx": 2}, [b"onnx bytes"]

    with _isolate.start(work, check=lambda: None, notice=lambda _: None, limit=LIMIT) as child:
        assert child.first() == ({"model": 1}, [b"model bytes"])
        got.touch()
        assert child.rest() == ({"onnx": 2}, [b"onnx bytes"])


def test_run_merges_the_shared_part_and_the_result() -> None:
    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        _isolate.share({"a": 1, "b": 1}, [b"1"])
        return {"b": 2, "c": 3}, [b"2", b"3"]

    assert run(work) == ({"a": 1, "b": 2, "c": 3}, [b"1", b"2", b"3"])


def test_share_outside_a_child_sends_nothing() -> None:
    assert _isolate.share({"a": 1}) is False  # a work called directly returns everything


def test_without_share_first_is_the_result() -> None:
    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        return {"all": True}, [b"x"]

    with _isolate.start(work, check=lambda: None, notice=lambda _: None, limit=LIMIT) as child:
        assert child.first() == ({"all": True}, [b"x"])
        assert child.rest() == ({}, [])


def test_leaving_after_the_shared_part_kills_the_child() -> None:
    """An error (or a cancel) in the backend between the two parts ends the child."""
    pid = 0

    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        _isolate.share({"pid": os.getpid()})
        while True:  # an endless conversion
            pass

    with pytest.raises(Cancelled):
        with _isolate.start(work, check=lambda: None, notice=lambda _: None, limit=LIMIT) as c:
            pid = c.first()[0]["pid"]
            raise Cancelled
    assert pid and not os.path.exists(f"/proc/{pid}")  # killed and reaped


def test_failure_after_the_shared_part_is_raised_by_rest() -> None:
    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        _isolate.share({"model": 1})
        raise InvalidParameterValue("conversion went wrong")

    with _isolate.start(work, check=lambda: None, notice=lambda _: None, limit=LIMIT) as child:
        child.first()
        with pytest.raises(InvalidParameterValue, match="conversion went wrong"):
            child.rest()


def test_cancel_while_waiting_for_the_rest() -> None:
    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        _isolate.share({})
        while True:
            pass

    started = time.monotonic()

    def check() -> None:
        if time.monotonic() - started > 0.5:
            raise Cancelled

    with _isolate.start(work, check=check, notice=lambda _: None, limit=LIMIT) as child:
        child.first()
        with pytest.raises(Cancelled):
            child.rest()
    assert time.monotonic() - started < 2
