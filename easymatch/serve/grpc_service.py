"""gRPC: tensorflow.serving.PredictionService (Predict, GetModelMetadata)
and ModelService (GetModelStatus), from tensorflow-serving-api."""

from __future__ import annotations

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from easymatch.serve.registry import Registry
from easymatch.serve.service import Service
from easymatch.serve.status import ServeError, invalid
from easymatch.serve.tensors import decode_tensor, encode_tensor

SIGNATURE_DEF = "signature_def"


def requested_version(spec) -> int | None:
    if spec.version_label:
        raise invalid(
            f"version_label {spec.version_label!r}: labels are not "
            "supported; give a version number or none for the latest"
        )
    return spec.version.value if spec.HasField("version") else None


def signature_def_map(registry: Registry, name: str, version: int | None):
    """(served version, SignatureDefMap) of a model."""
    kind = registry.kind(name)
    servable, _ = registry.lookup(name, version, "serving_default")
    result = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in servable.models[kind].items():
        result.signature_def[key].CopyFrom(signature.definition)
    return servable.version, result


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, service: Service) -> None:
        self.service = service

    async def Predict(self, request, context):  # noqa: N802 - gRPC name
        spec = request.model_spec
        try:
            servable, signature, outputs = await self.service.predict(
                spec.name,
                requested_version(spec),
                spec.signature_name,
                lambda sig: {
                    name: decode_tensor(name, proto, sig.accepts(name))
                    for name, proto in request.inputs.items()
                },
                list(request.output_filter),
            )
        except ServeError as error:
            await context.abort(error.code, error.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = spec.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature.name
        for name, array in outputs.items():
            response.outputs[name].CopyFrom(encode_tensor(array))
        return response

    async def GetModelMetadata(self, request, context):  # noqa: N802
        spec = request.model_spec
        try:
            unknown = set(request.metadata_field) - {SIGNATURE_DEF}
            if unknown or not request.metadata_field:
                raise invalid(
                    f"metadata_field must be [{SIGNATURE_DEF!r}], got "
                    f"{list(request.metadata_field)}"
                )
            version, definitions = signature_def_map(
                self.service.registry, spec.name, requested_version(spec)
            )
        except ServeError as error:
            await context.abort(error.code, error.message)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = spec.name
        response.model_spec.version.value = version
        response.metadata[SIGNATURE_DEF].Pack(definitions)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def GetModelStatus(self, request, context):  # noqa: N802
        spec = request.model_spec
        try:
            found = self.registry.status(spec.name, requested_version(spec))
        except ServeError as error:
            await context.abort(error.code, error.message)
        response = get_model_status_pb2.GetModelStatusResponse()
        response.model_version_status.extend(found)
        return response


def add_services(server: grpc.aio.Server, service: Service) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(service), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelService(service.registry), server
    )
