"""TF Serving warmup records: real rows replayed when a version loads.

TF Serving reads `assets.extra/tf_serving_warmup_requests`, a TFRecord file
of PredictionLog protos, and runs each request before the version takes
traffic, so the first real requests do not pay for graph initialization.
"""

from __future__ import annotations

import os

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from easymatch.export.inputs import SignatureBatch
from easymatch.export.signatures import (
    EXAMPLE_SIGNATURE,
    EXAMPLES_INPUT,
    SERVING_SIGNATURE,
)

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# A single row (the usual online request) and a small batch.
WARMUP_BATCH_SIZES = (1, 4)


def warmup_requests(batch: SignatureBatch) -> list[predict_pb2.PredictRequest]:
    """Requests of both signatures built from the first rows of `batch`.

    `serving_default` cannot carry a null integer, so its requests use
    only rows without one (none if there is no such row).
    """
    complete = batch.take(batch.complete_rows)
    requests = []
    for size in WARMUP_BATCH_SIZES:
        rows = complete.take(slice(0, size))
        if len(rows):
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = SERVING_SIGNATURE
            for name, values in rows.inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
            requests.append(request)
    for size in WARMUP_BATCH_SIZES:
        rows = batch.take(slice(0, size))
        request = predict_pb2.PredictRequest()
        request.model_spec.signature_name = EXAMPLE_SIGNATURE
        request.inputs[EXAMPLES_INPUT].CopyFrom(
            tf.make_tensor_proto(rows.examples(), dtype=tf.string)
        )
        requests.append(request)
    return requests


def write_warmup(saved_model_dir: str, batch: SignatureBatch) -> str:
    """Writes the warmup file into an exported tower; returns its path."""
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for request in warmup_requests(batch):
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path
