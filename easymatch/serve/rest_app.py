"""REST, as TF Serving's: /v1/models/{name}[/versions/{v}] for status,
/metadata, and :predict; errors as {"error": message} with TF Serving's
HTTP status for the gRPC code."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from google.protobuf import json_format

from easymatch.serve.grpc_service import signature_def_map
from easymatch.serve.rest_json import parse_body, request_arrays, response_body
from easymatch.serve.service import Service
from easymatch.serve.status import ServeError, invalid

MODEL = r"/v1/models/{name:[^/:]+}"
VERSION = r"/versions/{version:[^/:]+}"


def reply(body: Any, status: int = 200) -> web.Response:
    # TF Serving writes non-finite floats as NaN / Infinity, as json does.
    return web.Response(
        text=json.dumps(body), status=status, content_type="application/json"
    )


def version_of(request: web.Request) -> int | None:
    text = request.match_info.get("version")
    if text is None:
        return None
    if not text.isdigit():
        raise invalid(f"version {text!r} is not a number")
    return int(text)


def as_dict(message) -> dict[str, Any]:
    return json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


@web.middleware
async def errors(request: web.Request, handler):
    try:
        return await handler(request)
    except ServeError as error:
        return reply({"error": error.message}, error.http_status)
    except web.HTTPRequestEntityTooLarge as error:
        return reply({"error": error.text}, 413)


def make_app(service: Service, max_request_bytes: int) -> web.Application:
    registry = service.registry

    async def status(request: web.Request) -> web.Response:
        found = registry.status(request.match_info["name"], version_of(request))
        return reply({"model_version_status": [as_dict(s) for s in found]})

    async def metadata(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        version, definitions = signature_def_map(
            registry, name, version_of(request)
        )
        spec = {"name": name, "signature_name": "", "version": str(version)}
        return reply(
            {
                "model_spec": spec,
                "metadata": {"signature_def": as_dict(definitions)},
            }
        )

    async def predict(request: web.Request) -> web.Response:
        body = parse_body(await request.read())
        signature_name = body.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise invalid("'signature_name' must be a string")
        _, _, outputs = await service.predict(
            request.match_info["name"],
            version_of(request),
            signature_name,
            lambda signature: request_arrays(body, signature),
        )
        return reply(response_body(outputs, "instances" in body))

    async def malformed(request: web.Request) -> web.Response:
        return reply(
            {"error": f"Malformed request: {request.method} {request.path}"},
            404,
        )

    app = web.Application(
        middlewares=[errors], client_max_size=max_request_bytes
    )
    for prefix in (MODEL, MODEL + VERSION):
        app.router.add_get(prefix, status)
        app.router.add_get(prefix + "/metadata", metadata)
        app.router.add_post(prefix + ":predict", predict)
    app.router.add_route("*", "/{tail:.*}", malformed)
    return app
