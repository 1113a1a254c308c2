"""One loaded version: the `user` and `item` towers and `retrieval`.

`retrieval` takes the user tower's inputs (both signatures) and answers
`item_ids` [B, K] and `scores` [B, K]: the user tower's embeddings searched
in the version's `item_index/` with ScaNN, or exactly (dot product over
every indexed item embedding) when the request sets `exact`. Optional
scalar inputs: `top_k` (default --top_k, capped at the corpus) and
`exact`. A version without `item_index/` has no `retrieval`.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2

from easymatch.export.brute_force import exact_search
from easymatch.export.scann_index import ItemIndex
from easymatch.export.warmup import WARMUP_FILE
from easymatch.serve.signature import Arrays, Signature, tensor_info
from easymatch.serve.status import invalid
from easymatch.serve.tensors import decode_tensor
from easymatch.serve.versions import ITEM_INDEX, Candidate

logger = logging.getLogger("easymatch")

TOWERS = ("user", "item")
RETRIEVAL = "retrieval"
KINDS = (*TOWERS, RETRIEVAL)
TOP_K, EXACT = "top_k", "exact"
IDS, SCORES = "item_ids", "scores"


def signature_defs(path: str) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDefs TF Serving reports for a SavedModel."""
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
        saved.ParseFromString(handle.read())
    defs = saved.meta_graphs[0].signature_def
    return {name: defs[name] for name in defs if not name.startswith("__")}


def tower_signatures(path: str) -> tuple[object, dict[str, Signature]]:
    """(the loaded SavedModel, which the functions need alive, and its
    signatures)."""
    loaded = tf.saved_model.load(path)
    signatures = {}
    for name, definition in signature_defs(path).items():
        function = loaded.signatures[name]
        inputs = {
            key: tf.as_dtype(info.dtype)
            for key, info in definition.inputs.items()
        }
        outputs = {
            key: tf.as_dtype(info.dtype)
            for key, info in definition.outputs.items()
        }

        def run(batch: Arrays, _: dict, function=function, inputs=inputs):
            tensors = {k: tf.constant(v, inputs[k]) for k, v in batch.items()}
            return {k: v.numpy() for k, v in function(**tensors).items()}

        signatures[name] = Signature(name, inputs, outputs, definition, run)
    return loaded, signatures


def id_dtype(export_dir: str) -> tf.DType:
    """The item id dtype of the export's `retrieval/` SavedModel (int64
    for an integer id column), so both retrieval paths answer alike;
    string without one."""
    path = os.path.join(export_dir, RETRIEVAL)
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        return tf.string
    outputs = signature_defs(path)["serving_default"].outputs
    return tf.as_dtype(outputs[IDS].dtype) if IDS in outputs else tf.string


class Retrieval:
    """The user tower's signatures, followed by a top-k item search."""

    def __init__(
        self,
        user: dict[str, Signature],
        index: ItemIndex,
        k: int,
        ids_dtype: tf.DType = tf.string,
    ):
        self.index = index
        self.default_k = max(1, min(k, len(index.ids)))
        self.ids_dtype = ids_dtype
        # Integer ids as numbers; a row ScaNN did not fill becomes -1.
        self.ids = (
            index.ids.astype(np.int64) if ids_dtype == tf.int64 else index.ids
        )
        self.missing_id = -1 if ids_dtype == tf.int64 else ""
        # Exact search reads the items from one tensor made once.
        self.items = tf.constant(np.asarray(index.embeddings, np.float32))
        self.signatures = {
            name: self.wrap(signature) for name, signature in user.items()
        }

    def wrap(self, user: Signature) -> Signature:
        (embedding,) = user.outputs
        definition = meta_graph_pb2.SignatureDef()
        definition.CopyFrom(user.definition)
        del definition.outputs[embedding]
        for name, dtype in ((IDS, self.ids_dtype), (SCORES, tf.float32)):
            definition.outputs[name].CopyFrom(
                tensor_info(name, dtype, [-1, self.default_k])
            )
        for name, dtype in ((TOP_K, tf.int64), (EXACT, tf.bool)):
            definition.inputs[name].CopyFrom(tensor_info(name, dtype, []))

        def run(batch: Arrays, options: dict) -> Arrays:
            queries = user.run(batch, {})[embedding]
            return self.search(queries, **options)

        return Signature(
            user.name,
            user.inputs,
            {IDS: self.ids_dtype, SCORES: tf.float32},
            definition,
            run,
            {TOP_K: (tf.int64, tf.int32), EXACT: (tf.bool,)},
        )

    def search(
        self, queries: np.ndarray, top_k: int | None = None, exact=False
    ) -> Arrays:
        k = self.default_k if top_k is None else int(top_k)
        if k <= 0:
            raise invalid(f"input 'top_k': must be > 0, got {k}")
        if exact:
            prepared = self.index.prepare_queries(queries)
            rows, scores = exact_search(self.items, prepared, k)
        else:
            rows, scores = self.index.search_rows(queries, k)
        # Not ItemIndex.ids_of: ids here take the retrieval model's dtype.
        ids = self.ids[np.maximum(rows, 0)]
        ids[rows < 0] = self.missing_id
        return {IDS: ids, SCORES: scores}


class Servable:
    """Every model of one version directory, loaded and warmed up."""

    def __init__(self, candidate: Candidate, top_k: int) -> None:
        self.version = candidate.version
        self.path = candidate.path
        self.models: dict[str, dict[str, Signature]] = {}
        self.loaded = []
        for side in TOWERS:
            loaded, signatures = tower_signatures(os.path.join(self.path, side))
            self.loaded.append(loaded)
            self.models[side] = signatures
        index_path = os.path.join(self.path, ITEM_INDEX)
        if os.path.isdir(index_path):
            index = ItemIndex.load(index_path)
            retrieval = Retrieval(
                self.models["user"], index, top_k, id_dtype(self.path)
            )
            self.models[RETRIEVAL] = retrieval.signatures
        self.warm_up()

    def warm_up(self) -> int:
        """Replays each tower's warmup requests (the user tower's also on
        retrieval); returns how many ran."""
        count = 0
        for side in TOWERS:
            path = os.path.join(self.path, side, WARMUP_FILE)
            if not os.path.isfile(path):
                continue
            kinds = [side] + ([RETRIEVAL] if side == "user" else [])
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                log = prediction_log_pb2.PredictionLog.FromString(record)
                request = log.predict_log.request
                for kind in kinds:
                    if kind not in self.models:
                        continue
                    name = request.model_spec.signature_name
                    signature = self.models[kind][name or "serving_default"]
                    arrays = {
                        key: decode_tensor(key, proto, signature.accepts(key))
                        for key, proto in request.inputs.items()
                    }
                    batch, options, _ = signature.split(arrays)
                    signature.run(batch, options)
                    count += 1
        logger.info("version %d: %d warmup requests", self.version, count)
        return count
