"""What a PS worker's queue carries (training/ps_input.py): a batch and
its tag, a failure, the start message; in one process, through a real
queue."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, demo_edits

from easymatch.config import load_pipeline_config
from easymatch.errors import DataError
from easymatch.run_context import RunContext
from easymatch.training.ps_input import (
    BatchLayout,
    failure_element,
    input_dataset,
    read_start_message,
    start_message,
    worker_failure,
)


@pytest.fixture(scope="module")
def run(taobao_data, tmp_path_factory) -> RunContext:
    edits = demo_edits(taobao_data, tmp_path_factory.mktemp("model"))
    return RunContext(load_pipeline_config(str(DEMO_CONFIG), edits), seed=3)


def _through_queue(layout: BatchLayout, flat: list):
    """`flat` put into a FIFO queue of the layout's types and taken out
    as the chief's per-worker dataset takes it."""
    queue = tf.queue.FIFOQueue(1, layout.dtypes)
    queue.enqueue(flat)
    return layout.unpack(queue.dequeue())


def test_a_batch_crosses_the_queue_whole(run):
    layout = BatchLayout.of(run)
    batch = next(iter(input_dataset(run, (1, 2), 0)))
    (worker, number), taken = _through_queue(
        layout, layout.flatten(1, 7, batch)
    )
    assert (int(worker), int(number)) == (1, 7)
    expected = tf.nest.flatten(batch, expand_composites=True)
    got = tf.nest.flatten(taken, expand_composites=True)
    assert len(got) == len(expected) > 10
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_failure_fails_the_step_with_its_line(run):
    layout = BatchLayout.of(run)
    text = "train.parquet: row 1001, column 'clk': inf is not a finite number"
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        _through_queue(layout, failure_element(layout.dtypes, 1, "data", text))
    failure = worker_failure(raised.value)
    assert isinstance(failure, DataError)
    assert str(failure) == f"worker 1: {text}"
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        _through_queue(
            layout, failure_element(layout.dtypes, 0, "internal", "KeyError")
        )
    failure = worker_failure(raised.value)
    assert not isinstance(failure, DataError)
    assert str(failure) == "input pipeline failed on worker 0: KeyError"
    assert (
        worker_failure(tf.errors.InvalidArgumentError(None, None, "x")) is None
    )


def test_start_message_gives_each_worker_its_place(run):
    dtypes = BatchLayout.of(run).dtypes
    message = start_message(tf.constant([4, 9, 2], tf.int64), 77, dtypes)
    for worker, first in enumerate([4, 9, 2]):
        assert read_start_message(message.numpy(), worker, 3) == (
            first,
            77,
            dtypes,
        )
