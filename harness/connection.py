"""How the load reaches its server beyond the URL: a bearer token, extra headers, TLS checks.

Why a module of its own, in the bottom layer: three places read these settings of the
``load`` block. The external endpoint's readiness check sends the same token and headers
and checks TLS the same way (:func:`tls_verify`); the harness checks them as the load
starts (:func:`check_connection`: the token's variable is set, the CA bundle loads, a
loud warning when certificates go unchecked), so a bad setting is one line before Locust
starts; the Locust process builds its request headers from them
(:func:`connection_headers`), reading the token from its own environment. The token is
never logged, written or put into an error text: only the variable's name is.

Imports nothing heavier than the config: the harness imports it too.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping

from harness.config import LoadSpec
from harness.errors import ConfigError

log = logging.getLogger(__name__)

#: Where these settings come from, as both processes see them.
SOURCE = "the load config"
#: The warning of ``load.verify: false`` (harness.log and locust.log), with the target.
INSECURE = (
    "load.verify is false: the TLS certificate of %s is not checked; anyone on the path "
    "can read the requests (and the bearer token) and answer in the server's place"
)


def bearer_token(load: LoadSpec, environ: Mapping[str, str]) -> str | None:
    """The token of ``load.api_key_env`` in ``environ``; ``None`` without the setting."""
    name = load.api_key_env
    if name is None:
        return None
    token = environ.get(name, "").strip()
    if not token:
        problem = f"environment variable {name} is not set (or empty); it holds the bearer token"
        raise ConfigError(SOURCE, "load.api_key_env", problem)
    if any(c in token for c in "\r\n\0"):
        problem = f"environment variable {name} holds a line break: it is no bearer token"
        raise ConfigError(SOURCE, "load.api_key_env", problem)
    return token


def connection_headers(load: LoadSpec, environ: Mapping[str, str]) -> dict[str, str]:
    """``load.headers``, and ``Authorization: Bearer <token>`` with ``load.api_key_env``."""
    headers = dict(load.headers)
    token = bearer_token(load, environ)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def with_headers(base: Mapping[str, str], extra: Mapping[str, str]) -> Mapping[str, str]:
    """``base`` (a protocol's headers) with ``extra`` on top, names compared without case."""
    if not extra:
        return base
    replaced = {name.lower() for name in extra}
    return {**{k: v for k, v in base.items() if k.lower() not in replaced}, **extra}


def tls_verify(load: LoadSpec) -> str | bool:
    """What an HTTP client of the harness checks certificates against: the CA bundle, or
    the system's CAs, or nothing (``verify: false``)."""
    if load.ca_bundle is not None:
        return load.ca_bundle
    return bool(load.verify)


def check_connection(load: LoadSpec, environ: Mapping[str, str], endpoint: str) -> None:
    """Before Locust starts: the token is there, the CA bundle loads; warn without checks.

    Raises :class:`ConfigError` (one line, naming the setting, never the token)."""
    bearer_token(load, environ)
    if load.ca_bundle is not None:
        try:
            ssl.create_default_context(cafile=load.ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            problem = f"cannot load CA certificates from {load.ca_bundle}: {exc}"
            raise ConfigError(SOURCE, "load.ca_bundle", problem) from None
    if not load.verify:
        log.warning(INSECURE, endpoint)
