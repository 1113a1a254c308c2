"""Batch plumbing over dicts of numpy columns: parallel ordered reading,
exact-size rebatching across files, and a seeded shuffle buffer."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

Batch = dict[str, np.ndarray]

_ITEM, _DONE, _ERROR = range(3)


def batch_len(batch: Batch) -> int:
    return len(next(iter(batch.values())))


def concat(parts: Sequence[Batch]) -> Batch:
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def take(batch: Batch, index: np.ndarray | slice) -> Batch:
    return {k: v[index] for k, v in batch.items()}


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    # A timeout loop, so that a worker whose consumer went away can exit.
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            pass
    return False


def _work(
    task: Callable[[], Iterable[Any]], q: queue.Queue, stop: threading.Event
) -> None:
    try:
        for item in task():
            if not _put(q, (_ITEM, item), stop):
                return
        _put(q, (_DONE, None), stop)
    except BaseException as e:  # handed to the consumer thread
        _put(q, (_ERROR, e), stop)


def ordered_parallel(
    tasks: Sequence[Callable[[], Iterable[Any]]],
    num_workers: int,
    depth: int = 4,
) -> Iterator[Any]:
    """Items of ``tasks`` in task order, produced by background threads.

    Up to ``num_workers`` consecutive tasks run at once, each buffering at
    most ``depth`` items, so the output is deterministic and memory is
    bounded while Arrow decoding (which releases the GIL) overlaps.
    """
    stop = threading.Event()
    started = 0

    def start() -> queue.Queue:
        nonlocal started
        q: queue.Queue = queue.Queue(depth)
        threading.Thread(
            target=_work, args=(tasks[started], q, stop), daemon=True
        ).start()
        started += 1
        return q

    running = deque(start() for _ in range(min(num_workers, len(tasks))))
    try:
        while running:
            tag, item = running[0].get()
            if tag == _ITEM:
                yield item
                continue
            running.popleft()
            if tag == _ERROR:
                raise item
            if started < len(tasks):
                running.append(start())
    finally:
        stop.set()


def rebatch(chunks: Iterable[Batch], batch_size: int) -> Iterator[Batch]:
    """Exactly ``batch_size`` rows per batch, filled across chunk (and so
    file) boundaries; only the last batch may be shorter."""
    pending: list[Batch] = []
    count = 0
    for chunk in chunks:
        pending.append(chunk)
        count += batch_len(chunk)
        if count < batch_size:
            continue
        merged = concat(pending)
        full = count - count % batch_size
        for start in range(0, full, batch_size):
            yield take(merged, slice(start, start + batch_size))
        count -= full
        pending = [take(merged, slice(full, None))] if count else []
    if count:
        yield concat(pending)


def shuffle_rows(
    batches: Iterable[Batch],
    rng: np.random.Generator,
    buffer_rows: int,
    batch_size: int,
) -> Iterator[Batch]:
    """A shuffle buffer of ``buffer_rows`` rows, vectorized by batch.

    Like tf.data's shuffle: once the buffer is full, each incoming batch
    replaces ``batch_size`` randomly chosen buffered rows, which are emitted.
    At the end the rest is permuted. Expects ``rebatch`` output (every batch
    but the last has ``batch_size`` rows) and yields the same shape.
    """
    pending: list[Batch] = []
    count = 0
    buffer: Batch | None = None
    for batch in batches:
        n = batch_len(batch)
        if buffer is None or n < batch_size:
            pending.append(batch)
            count += n
            if buffer is None and count >= buffer_rows:
                # A copy: the buffer is written to, the batches may be views.
                buffer = {k: v.copy() for k, v in concat(pending).items()}
                pending, count = [], 0
            continue
        index = rng.choice(batch_len(buffer), n, replace=False)
        out = take(buffer, index)
        for k, v in buffer.items():
            v[index] = batch[k]
        yield out
    parts = ([buffer] if buffer is not None else []) + pending
    if not parts:
        return
    rest = concat(parts)
    rest = take(rest, rng.permutation(batch_len(rest)))
    for start in range(0, batch_len(rest), batch_size):
        yield take(rest, slice(start, start + batch_size))
