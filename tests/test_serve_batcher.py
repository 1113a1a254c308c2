"""The request batcher of easymatch.serve, with a plain function as the
signature so the batches it forms can be seen."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from easymatch.serve.batcher import Batcher
from easymatch.serve.signature import Signature
from easymatch.serve.status import ServeError


def doubling(sizes: list[int]) -> Signature:
    """x → 2x; records each call's rows; a negative x is bad data."""

    def run(inputs, options):
        x = inputs["x"]
        sizes.append(len(x))
        if (x < 0).any():
            raise ValueError("negative input")
        return {"y": 2 * x}

    return Signature(
        "serving_default",
        {"x": tf.int64},
        {"y": tf.int64},
        meta_graph_pb2.SignatureDef(),
        run,
    )


async def submit_all(batcher: Batcher, signature, values) -> list:
    async def one(v):
        x = np.array(v, np.int64)
        try:
            return await batcher.run("k", signature, {"x": x}, {}, len(x))
        except Exception as error:  # noqa: BLE001 - the test inspects it
            return error

    results = await asyncio.gather(*(one(v) for v in values))
    await batcher.drain()
    return results


def test_concurrent_requests_share_batches_and_get_their_rows():
    sizes: list[int] = []

    async def main():
        batcher = Batcher(4, 50_000, 1, 10)
        return await submit_all(
            batcher, doubling(sizes), [[i] for i in range(10)]
        )

    results = asyncio.run(main())
    assert [r["y"].tolist() for r in results] == [[2 * i] for i in range(10)]
    assert sum(sizes) == 10 and max(sizes) == 4 and len(sizes) < 10


def test_one_bad_request_does_not_fail_its_batch():
    sizes: list[int] = []

    async def main():
        batcher = Batcher(8, 50_000, 1, 10)
        return await submit_all(batcher, doubling(sizes), [[1], [-1], [3, 4]])

    good, bad, pair = asyncio.run(main())
    assert good["y"].tolist() == [2] and pair["y"].tolist() == [6, 8]
    assert isinstance(bad, ValueError)
    assert sizes[0] == 4  # tried together first, then one by one


def test_limits():
    async def main():
        batcher = Batcher(2, 200_000, 1, 1)
        signature = doubling([])
        return await submit_all(batcher, signature, [[1, 2, 3], [1], [2], [3]])

    too_big, first, second, third = asyncio.run(main())
    assert isinstance(too_big, ServeError)
    assert too_big.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "maximum batch size 2" in too_big.message
    assert first["y"].tolist() == [2] and second["y"].tolist() == [4]
    # max_enqueued_batches=1: a third row would queue a second batch.
    assert isinstance(third, ServeError)
    assert third.code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("timeout", [0, 1000])
def test_a_lone_request_is_answered(timeout):
    async def main():
        batcher = Batcher(4, timeout, 2, 10)
        return await submit_all(batcher, doubling([]), [[5]])

    (result,) = asyncio.run(main())
    assert result["y"].tolist() == [10]
