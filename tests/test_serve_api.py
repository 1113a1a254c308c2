"""easymatch.serve against TF Serving client code: the gRPC stubs of
tensorflow-serving-api and plain REST JSON, on a real server process."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import tensorflow as tf
from serving import Server
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
)

pytestmark = pytest.mark.slow
MAX_BATCH = 16
MAX_BYTES = 65536


@pytest.fixture(scope="module")
def server(served_export):
    process = Server(
        served_export["dir"],
        "--max_batch_size",
        str(MAX_BATCH),
        "--max_request_bytes",
        str(MAX_BYTES),
    )
    try:
        process.wait_for(1)
        yield process
    finally:
        assert process.terminate() == 0, process.log()


def request(model: str, inputs: dict, signature: str = "", version=None):
    message = predict_pb2.PredictRequest()
    message.model_spec.name = model
    message.model_spec.signature_name = signature
    if version is not None:
        message.model_spec.version.value = version
    for name, values in inputs.items():
        message.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    return message


def output(response, name: str) -> np.ndarray:
    return tf.make_ndarray(response.outputs[name])


def examples(rows: dict) -> list[bytes]:
    """The rows as serialized tf.Example protos."""
    serialized = []
    for i in range(len(next(iter(rows.values())))):
        feature = {}
        for name, values in rows.items():
            value = values[i]
            if values.dtype == np.int64:
                kind = {"int64_list": tf.train.Int64List(value=[value])}
            elif values.dtype == np.float32:
                kind = {"float_list": tf.train.FloatList(value=[value])}
            else:
                kind = {"bytes_list": tf.train.BytesList(value=[value])}
            feature[name] = tf.train.Feature(**kind)
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        serialized.append(example.SerializeToString())
    return serialized


def json_rows(rows: dict) -> list[dict]:
    def plain(value):
        return value.decode() if isinstance(value, bytes) else value.item()

    count = len(next(iter(rows.values())))
    return [{k: plain(v[i]) for k, v in rows.items()} for i in range(count)]


@pytest.mark.parametrize("side", ["user", "item"])
def test_grpc_predict_equals_the_savedmodel_in_a_tf_only_process(
    server,
    served_export,
    side,
):
    response = server.predict.Predict(
        request(side, served_export["rows"][side]), timeout=60
    )
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    np.testing.assert_allclose(
        output(response, f"{side}_tower_emb"),
        served_export["reference"][side],
        rtol=1e-5,
        atol=1e-6,
    )


def test_rest_row_and_columnar_formats(server, served_export):
    rows = served_export["rows"]["item"]
    expected = served_export["reference"]["item"]
    status, body = server.rest(
        "POST", "/v1/models/item:predict", {"instances": json_rows(rows)}
    )
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-5)
    columns = {k: [row[k] for row in json_rows(rows)] for k in rows}
    status, body = server.rest(
        "POST", "/v1/models/item/versions/1:predict", {"inputs": columns}
    )
    assert status == 200, body
    np.testing.assert_allclose(body["outputs"], expected, rtol=1e-5)


def test_tf_example_requests(server, served_export):
    rows = served_export["rows"]["user"]
    expected = served_export["reference"]["user"]
    protos = examples(rows)
    response = server.predict.Predict(
        request("user", {"examples": protos}, "tf_example"), timeout=60
    )
    np.testing.assert_allclose(
        output(response, "user_tower_emb"), expected, rtol=1e-5, atol=1e-6
    )
    b64 = [{"b64": base64.b64encode(p).decode()} for p in protos]
    body = {"signature_name": "tf_example", "instances": b64}
    status, answer = server.rest("POST", "/v1/models/user:predict", body)
    assert status == 200, answer
    np.testing.assert_allclose(answer["predictions"], expected, rtol=1e-5)


def exact_top_k(served_export, k: int):
    """Top-k over the exported item embeddings by numpy."""
    index = served_export["dir"] / "item_index"
    items = np.load(index / "item_embeddings.npy")
    ids = np.array((index / "item_ids.txt").read_text().splitlines())
    queries = served_export["reference"]["user"]
    if json.loads((index / "index.json").read_text())["similarity"] == (
        "COSINE"
    ):
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = queries @ items.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return ids[top], np.take_along_axis(scores, top, axis=1)


@pytest.mark.parametrize("exact", [True, False])
def test_retrieval_returns_the_exact_top_k(server, served_export, exact):
    """ScaNN over 100 items is brute force (the index is exact below 20k
    items), so both modes equal numpy's top-k, and the export's stock-op
    retrieval SavedModel (ids in its dtype, int64 here)."""
    k = 7
    ids, scores = exact_top_k(served_export, k)
    reference = served_export["reference"]
    np.testing.assert_array_equal(
        reference["retrieval_ids"][:, :k].astype(str), ids
    )
    rows = served_export["rows"]["user"]
    inputs = dict(rows, top_k=np.int64(k), exact=np.bool_(exact))
    response = server.predict.Predict(request("retrieval", inputs), timeout=60)
    got = output(response, "item_ids")
    assert got.dtype == reference["retrieval_ids"].dtype == np.int64
    np.testing.assert_array_equal(got, reference["retrieval_ids"][:, :k])
    np.testing.assert_allclose(output(response, "scores"), scores, atol=1e-5)
    body = {"instances": json_rows(rows), "top_k": k, "exact": exact}
    status, answer = server.rest("POST", "/v1/models/retrieval:predict", body)
    assert status == 200, answer
    assert [p["item_ids"] for p in answer["predictions"]] == got.tolist()


def test_metadata_and_status(server, served_export):
    message = get_model_metadata_pb2.GetModelMetadataRequest()
    message.model_spec.name = "retrieval"
    message.metadata_field.append("signature_def")
    response = server.predict.GetModelMetadata(message, timeout=60)
    definitions = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(definitions)
    serving = definitions.signature_def["serving_default"]
    assert set(serving.outputs) == {"item_ids", "scores"}
    user_inputs = set(served_export["rows"]["user"])
    assert set(serving.inputs) == user_inputs | {"top_k", "exact"}
    assert set(definitions.signature_def) == {"serving_default", "tf_example"}
    status, body = server.rest("GET", "/v1/models/user/versions/1/metadata")
    assert status == 200
    assert body["model_spec"] == {
        "name": "user",
        "signature_name": "",
        "version": "1",
    }
    rest_inputs = body["metadata"]["signature_def"]["signature_def"][
        "serving_default"
    ]["inputs"]
    assert set(rest_inputs) == user_inputs
    message = get_model_status_pb2.GetModelStatusRequest()
    message.model_spec.name = "item"
    (version,) = server.models.GetModelStatus(message).model_version_status
    assert (version.version, version.state) == (1, 30)  # AVAILABLE
    assert server.rest("GET", "/v1/models/retrieval") == (
        200,
        {
            "model_version_status": [
                {
                    "version": "1",
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        },
    )


def bad_grpc_requests(rows: dict) -> list:
    """(request, status, text the message must contain)."""
    user_id = rows["user_id"]
    renamed = dict(rows, nope=user_id)
    as_float = dict(rows, user_id=user_id.astype(np.float32))
    missing = {k: v for k, v in rows.items() if k != "pid"}
    too_many = {k: np.resize(v, MAX_BATCH + 1) for k, v in rows.items()}
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    return [
        (request("user", renamed), invalid, "'nope'"),
        (request("user", as_float), invalid, "expects int64 but float"),
        (request("user", missing), invalid, "'pid' is missing"),
        (request("user", too_many), invalid, f"maximum batch size {MAX_BATCH}"),
        (request("user", rows, "nope"), invalid, '"nope" not found'),
        (
            request("user", {"examples": [b"not a proto"]}, "tf_example"),
            invalid,
            "parse",
        ),
        (
            request("retrieval", dict(rows, top_k=np.int64(0))),
            invalid,
            "'top_k'",
        ),
        (request("users", rows), grpc.StatusCode.NOT_FOUND, "users"),
        (
            request("user", rows, version=7),
            grpc.StatusCode.NOT_FOUND,
            "Specific(user, 7)",
        ),
    ]


def test_bad_grpc_requests_then_a_good_one(server, served_export):
    rows = served_export["rows"]["user"]
    for bad, code, text in bad_grpc_requests(rows):
        with pytest.raises(grpc.RpcError) as caught:
            server.predict.Predict(bad, timeout=60)
        assert caught.value.code() == code, caught.value.details()
        assert text in caught.value.details()
        good = server.predict.Predict(request("user", rows), timeout=60)
        np.testing.assert_allclose(
            output(good, "user_tower_emb"),
            served_export["reference"]["user"],
            rtol=1e-5,
            atol=1e-6,
        )


def test_bad_rest_requests_then_a_good_one(server, served_export):
    rows = json_rows(served_export["rows"]["user"])
    wrong_type = [dict(rows[0], user_id="abc")]
    cases = [
        ("/v1/models/user:predict", b'{"instances": [', 400, "JSON Parse"),
        ("/v1/models/user:predict", {"instances": wrong_type}, 400, "int64"),
        (
            "/v1/models/user:predict",
            {"instances": rows, "inputs": {}},
            400,
            "exactly one of",
        ),
        ("/v1/models/nope:predict", {"instances": rows}, 404, "nope"),
        (
            "/v1/models/user/versions/9:predict",
            {"instances": rows},
            404,
            "Specific(user, 9)",
        ),
        ("/v1/modelz/user:predict", {"instances": rows}, 404, "Malformed"),
    ]
    for path, body, status, text in cases:
        got, answer = server.rest("POST", path, body)
        assert got == status and text in answer["error"], answer
        got, answer = server.rest(
            "POST", "/v1/models/user:predict", {"instances": rows}
        )
        assert got == 200 and len(answer["predictions"]) == len(rows)


def test_concurrent_single_row_requests_each_get_their_row(
    server,
    served_export,
):
    """32 concurrent clients share batches; each gets its own row."""
    rows = served_export["rows"]["item"]
    expected = served_export["reference"]["item"]

    def one(i: int) -> np.ndarray:
        row = {k: v[i % len(v) : i % len(v) + 1] for k, v in rows.items()}
        response = server.predict.Predict(request("item", row), timeout=60)
        return output(response, "item_tower_emb")[0]

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(96)))
    for i, embedding in enumerate(results):
        np.testing.assert_allclose(
            embedding, expected[i % len(expected)], rtol=1e-5, atol=1e-6
        )


def test_requests_over_the_size_limit_are_refused(server, served_export):
    rows = served_export["rows"]["user"]
    huge = dict(rows, pid=np.array([b"x" * MAX_BYTES] * len(rows), object))
    with pytest.raises(grpc.RpcError) as caught:
        server.predict.Predict(request("user", huge), timeout=60)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    body = {"instances": json_rows(huge)}
    status, answer = server.rest("POST", "/v1/models/user:predict", body)
    assert status == 413 and "exceeded" in answer["error"], answer
    good = server.predict.Predict(request("user", rows), timeout=60)
    assert output(good, "user_tower_emb").shape[0] == len(rows["user_id"])
