"""Request batching, as TF Serving's: concurrent requests to the same
signature (and, for retrieval, the same top_k/exact) run as one call.

Each queue forms a batch once a worker thread is free: everything queued
up to --max_batch_size rows, after waiting up to --batch_timeout_micros
from the oldest request for more. With a timeout of 0, batches are the
requests that arrived while the workers were busy, so a lone request
never waits. A request larger than max_batch_size, or one that would
queue more than max_enqueued_batches batches, is refused.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from easymatch.serve.signature import Arrays, Signature
from easymatch.serve.status import invalid, unavailable


@dataclass
class Task:
    inputs: Arrays
    rows: int
    future: asyncio.Future
    arrival: float = field(default_factory=time.monotonic)


class Queue:
    def __init__(self, signature: Signature, options: dict) -> None:
        self.signature = signature
        self.options = options
        self.tasks: deque[Task] = deque()
        self.rows = 0
        self.arrived = asyncio.Event()
        self.dispatcher: asyncio.Task | None = None


class Batcher:
    def __init__(
        self,
        max_batch_size: int,
        batch_timeout_micros: int,
        num_batch_threads: int,
        max_enqueued_batches: int,
    ) -> None:
        self.max_rows = max_batch_size
        self.timeout = batch_timeout_micros / 1e6
        self.max_queued_rows = max_batch_size * max_enqueued_batches
        self.executor = ThreadPoolExecutor(num_batch_threads, "batch")
        self.workers = asyncio.Semaphore(num_batch_threads)
        self.queues: dict[Hashable, Queue] = {}
        self.running: set[asyncio.Task] = set()

    async def run(
        self,
        key: Hashable,
        signature: Signature,
        inputs: Arrays,
        options: dict,
        rows: int,
    ) -> Arrays:
        """The signature's outputs for these rows, run in some batch."""
        if rows > self.max_rows:
            raise invalid(
                f"batch size {rows} is larger than the maximum batch size "
                f"{self.max_rows} (--max_batch_size)"
            )
        queue = self.queues.get(key)
        if queue is None:
            queue = self.queues[key] = Queue(signature, options)
        if queue.rows + rows > self.max_queued_rows:
            raise unavailable(
                "The batch scheduling queue to which this task was submitted "
                "is full"
            )
        task = Task(inputs, rows, asyncio.get_running_loop().create_future())
        queue.tasks.append(task)
        queue.rows += rows
        queue.arrived.set()
        if queue.dispatcher is None:
            queue.dispatcher = asyncio.create_task(self.dispatch(key, queue))
        return await task.future

    async def dispatch(self, key: Hashable, queue: Queue) -> None:
        """Forms and starts batches while the queue has tasks."""
        while queue.tasks:
            await self.workers.acquire()
            deadline = queue.tasks[0].arrival + self.timeout
            while queue.rows < self.max_rows:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                queue.arrived.clear()
                try:
                    await asyncio.wait_for(queue.arrived.wait(), left)
                except TimeoutError:
                    break
            batch, rows = [], 0
            while queue.tasks and rows + queue.tasks[0].rows <= self.max_rows:
                task = queue.tasks.popleft()
                batch.append(task)
                rows += task.rows
            queue.rows -= rows
            running = asyncio.create_task(self.execute(queue, batch))
            self.running.add(running)
            running.add_done_callback(self.running.discard)
        del self.queues[key]

    async def execute(self, queue: Queue, batch: list[Task]) -> None:
        try:
            if len(batch) == 1:
                await self.answer(queue, batch[0])
            else:
                await self.answer_batch(queue, batch)
        finally:
            self.workers.release()

    async def call(self, queue: Queue, inputs: Arrays) -> Arrays:
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, queue.signature.run, inputs, queue.options
        )

    async def answer(self, queue: Queue, task: Task) -> None:
        try:
            result = await self.call(queue, task.inputs)
        except Exception as error:  # noqa: BLE001 - handed to the request
            if not task.future.done():
                task.future.set_exception(error)
            return
        if not task.future.done():
            task.future.set_result(result)

    async def answer_batch(self, queue: Queue, batch: list[Task]) -> None:
        """One call over the concatenated rows, split back per request.
        If it fails, each request runs alone, so one request with bad
        data does not fail the others."""
        inputs = {
            name: np.concatenate([task.inputs[name] for task in batch])
            for name in batch[0].inputs
        }
        try:
            outputs = await self.call(queue, inputs)
        except Exception:  # noqa: BLE001 - retried request by request
            for task in batch:
                await self.answer(queue, task)
            return
        bounds = np.cumsum([task.rows for task in batch])[:-1]
        split = {k: np.split(v, bounds) for k, v in outputs.items()}
        for i, task in enumerate(batch):
            if not task.future.done():
                task.future.set_result({k: v[i] for k, v in split.items()})

    async def drain(self) -> None:
        """Waits for every queued and running batch."""
        while self.queues or self.running:
            await asyncio.sleep(0.01)
        self.executor.shutdown(wait=True)
