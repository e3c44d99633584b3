"""A read given by pyml.so (pyml.server._native._Given) lives as long as any array of it."""

from __future__ import annotations

import ctypes
import gc

import numpy as np

from pyml.server import _native


def test_a_given_buffer_is_freed_with_its_last_array() -> None:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    width, capacity = 3, 1000
    address = libc.malloc(8 * width * capacity)
    assert address
    freed: list[int] = []

    def free(at: int) -> None:
        freed.append(at)
        libc.free(at)

    read = np.asarray(_native._Given(address, width, capacity, free))
    assert read.shape == (width, capacity) and read.dtype == np.float64
    assert read.ctypes.data == address and read.flags.writeable
    read[:] = np.arange(width * capacity, dtype=np.float64).reshape(width, capacity)
    column = read[1, :10]
    keys = read[2, :10].view(np.int64)
    del read
    gc.collect()
    assert freed == []  # the views keep it
    assert column.tolist() == list(range(capacity, capacity + 10))
    del column
    gc.collect()
    assert freed == [] and keys.size == 10
    del keys
    gc.collect()
    assert freed == [address]
