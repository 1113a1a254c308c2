"""Predict as both protocols run it: look up, check, batch, filter."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import grpc
import tensorflow as tf

from easymatch.errors import EasyMatchError
from easymatch.serve.batcher import Batcher
from easymatch.serve.registry import Registry
from easymatch.serve.servable import Servable
from easymatch.serve.signature import Arrays, Signature
from easymatch.serve.status import ServeError, invalid

logger = logging.getLogger("easymatch")

DEFAULT_SIGNATURE = "serving_default"


class Service:
    def __init__(self, registry: Registry, batcher: Batcher) -> None:
        self.registry = registry
        self.batcher = batcher

    async def predict(
        self,
        name: str,
        version: int | None,
        signature_name: str,
        decode: Callable[[Signature], Arrays],
        output_filter: Sequence[str] = (),
    ) -> tuple[Servable, Signature, Arrays]:
        """(servable, signature, outputs); `decode` turns the request's
        inputs into arrays of the signature's dtypes."""
        servable, signature = self.registry.lookup(
            name, version, signature_name or DEFAULT_SIGNATURE
        )
        for output in output_filter:
            if output not in signature.outputs:
                raise invalid(
                    f"output tensor alias not found in signature: {output} "
                    f"(outputs: {', '.join(signature.outputs)})"
                )
        batch, options, rows = signature.split(decode(signature))
        key = (
            servable,
            self.registry.kind(name),
            signature.name,
            tuple(sorted(options.items())),
        )
        try:
            outputs = await self.batcher.run(
                key, signature, batch, options, rows
            )
        except ServeError:
            raise
        except tf.errors.InvalidArgumentError as error:
            raise invalid(first_line(error.message)) from None
        except EasyMatchError as error:
            raise invalid(str(error)) from None
        except Exception as error:
            logger.exception("internal error in %s", name)
            raise ServeError(
                grpc.StatusCode.INTERNAL,
                f"internal error: {type(error).__name__}: {error}",
            ) from None
        if output_filter:
            outputs = {k: outputs[k] for k in output_filter}
        return servable, signature, outputs


def first_line(message: str) -> str:
    """The op's own message in a TF error: the line before the
    `[[node ...]]` marker, after the "Graph execution error" stack."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "[[" in line:
            head = line.split("[[")[0].strip()
            return head or (lines[i - 1] if i else "invalid argument")
    return lines[-1] if lines else "invalid argument"
