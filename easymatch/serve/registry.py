"""The served versions: load the newest, switch, unload the old one.

A background thread polls `model_base_path` (versions.VersionScanner).
A newer ready version is loaded completely, warmup requests included,
while the current one keeps serving; then requests switch to it and the
old version is released (requests already running on it finish first:
they hold it). Version states follow TF Serving's ModelVersionStatus.
A version that fails to load is logged and reported with its error, and
retried only once its files change.
"""

from __future__ import annotations

import gc
import logging
import threading

from tensorflow_serving.apis import get_model_status_pb2

from easymatch.serve.servable import KINDS, RETRIEVAL, Servable
from easymatch.serve.signature import Signature
from easymatch.serve.status import invalid, not_found
from easymatch.serve.versions import VersionScanner

logger = logging.getLogger("easymatch")

State = get_model_status_pb2.ModelVersionStatus.State
# Poll quickly until the first version is up, so start-up is not slowed
# by a long --file_system_poll_wait_seconds.
FIRST_POLL_SECONDS = 0.2


class Registry:
    def __init__(self, base: str, top_k: int, prefix: str = "") -> None:
        self.scanner = VersionScanner(base)
        self.top_k = top_k
        self.names = {f"{prefix}{kind}": kind for kind in KINDS}
        self.current: Servable | None = None
        self.states: dict[int, tuple[int, str]] = {}

    def poll(self) -> None:
        candidate = self.scanner.newest_ready()
        current = self.current
        if candidate is None or (
            current is not None and candidate.version <= current.version
        ):
            return
        self.states[candidate.version] = (State.LOADING, "")
        logger.info(
            "loading version %d from %s", candidate.version, candidate.path
        )
        try:
            servable = Servable(candidate, self.top_k)
        except Exception as error:  # noqa: BLE001 - any load failure
            message = f"{candidate.path}: {type(error).__name__}: {error}"
            logger.error(
                "version %d failed to load: %s", candidate.version, message
            )
            self.scanner.mark_failed(candidate)
            self.states[candidate.version] = (State.END, message)
            return
        self.current = servable
        self.states[candidate.version] = (State.AVAILABLE, "")
        logger.info("serving version %d", candidate.version)
        if current is not None:
            old = current.version
            self.states[old] = (State.UNLOADING, "")
            del current
            gc.collect()
            self.states[old] = (State.END, "")
            logger.info("unloaded version %d", old)

    def watch(self, stop: threading.Event, interval: float) -> None:
        """Polls until `stop`; errors of a poll are logged, not fatal."""
        while not stop.is_set():
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - keep serving
                logger.exception("polling %s failed", self.scanner.base)
            wait = interval if self.current else FIRST_POLL_SECONDS
            stop.wait(min(wait, interval))

    def kind(self, name: str) -> str:
        if name not in self.names:
            raise not_found(
                f"Servable not found for request: Latest({name}) (models: "
                f"{', '.join(self.names)})"
            )
        return self.names[name]

    def lookup(
        self, name: str, version: int | None, signature_name: str
    ) -> tuple[Servable, Signature]:
        """The servable and signature a request names, or NOT_FOUND."""
        kind = self.kind(name)
        servable = self.current
        wanted = (
            f"Specific({name}, {version})" if version else f"Latest({name})"
        )
        if servable is None or (version and version != servable.version):
            raise not_found(f"Servable not found for request: {wanted}")
        if kind not in servable.models:
            raise not_found(
                f"Servable not found for request: {wanted}: version "
                f"{servable.version} has no item_index/ to serve {RETRIEVAL}"
            )
        signatures = servable.models[kind]
        if signature_name not in signatures:
            raise invalid(
                f'Serving signature key "{signature_name}" not found '
                f"(model {name} has {', '.join(signatures)})"
            )
        return servable, signatures[signature_name]

    def status(self, name: str, version: int | None):
        """ModelVersionStatus protos of `name` (one version if given)."""
        kind = self.kind(name)
        found = []
        for number, (state, message) in sorted(self.states.items()):
            if version and number != version:
                continue
            current = self.current
            if (
                kind == RETRIEVAL
                and state == State.AVAILABLE
                and current is not None
                and current.version == number
                and RETRIEVAL not in current.models
            ):
                continue
            status = get_model_status_pb2.ModelVersionStatus(
                version=number, state=state
            )
            status.status.error_code = 2 if message else 0  # UNKNOWN / OK
            status.status.error_message = message
            found.append(status)
        if not found:
            which = (
                f"version {version} of model" if version else "any version of"
            )
            raise not_found(f"Could not find {which} {name}")
        return found
