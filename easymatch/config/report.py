"""One-line config errors and warnings: `<source>:<line>: <field>: <what>`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NoReturn, Protocol

from easymatch.errors import ConfigError

logger = logging.getLogger("easymatch.config")


class Locator(Protocol):
    def locate(self, path: str) -> tuple[str, int]:
        """(source name, line) where the field `path` is, or its parent."""
        ...


def format_problem(source: str, line: int, path: str, what: str) -> str:
    where = f"{source}:{line}:"
    return f"{where} {path}: {what}" if path else f"{where} {what}"


@dataclass
class Reporter:
    """Raises or logs problems found in a config, located in its source."""

    locator: Locator

    def fail(self, path: str, what: str, at: str | None = None) -> NoReturn:
        """Raises ConfigError about `path`; the line is that of `at`."""
        source, line = self.locator.locate(at or path)
        raise ConfigError(format_problem(source, line, path, what))

    def warn(self, path: str, what: str) -> None:
        source, line = self.locator.locate(path)
        logger.warning(format_problem(source, line, path, what))
