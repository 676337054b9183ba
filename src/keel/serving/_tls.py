"""HTTPS for ``keel serve``: the certificate files, checked once before the server starts.

    tls = server_tls(settings, certfile=Path("cert.pem"), keyfile=Path("key.pem"))
    run_server(app, host="0.0.0.0", port=8443, tls=tls)    # None: plain HTTP

The files come from ``keel serve``'s options, else from ``[serving]`` (tls_certfile,
tls_keyfile, tls_keyfile_password, tls_ca_certs; relative paths from the project directory).
uvicorn loads them again in every process that serves; they are loaded here first, in the
process that starts the server, so a missing file, a file that is not PEM or a key that is not
the certificate's is one clear error before a socket is bound or a worker is spawned, not a
traceback per worker. With CA certificates, clients must present a certificate they signed
(mutual TLS).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.errors import ConfigError

if TYPE_CHECKING:
    from keel.config import Settings


@dataclass(frozen=True)
class ServerTLS:
    """Checked certificate files for uvicorn; ``ca_certs`` set means mutual TLS."""

    certfile: Path
    keyfile: Path
    keyfile_password: str | None = field(default=None, repr=False)
    ca_certs: Path | None = None

    def uvicorn_options(self) -> dict[str, Any]:
        """uvicorn's ``ssl_*`` keyword arguments for these files."""
        return {
            "ssl_certfile": str(self.certfile),
            "ssl_keyfile": str(self.keyfile),
            "ssl_keyfile_password": self.keyfile_password,
            "ssl_ca_certs": None if self.ca_certs is None else str(self.ca_certs),
            "ssl_cert_reqs": ssl.CERT_NONE if self.ca_certs is None else ssl.CERT_REQUIRED,
        }


@dataclass(frozen=True)
class _Given:
    path: Path
    origin: str
    """Where the path came from, for the error message: an option or a settings key."""


def server_tls(
    settings: Settings,
    *,
    certfile: Path | None = None,
    keyfile: Path | None = None,
    ca_certs: Path | None = None,
) -> ServerTLS | None:
    """The TLS the server runs with: each file given here, else its ``[serving]`` setting;
    None when neither a certificate nor a key is set.

    Raises :class:`~keel.errors.ConfigError` when only one of certificate and key is set, a
    file is missing or unreadable, is not PEM, the key does not match the certificate, or the
    key is encrypted and its password is missing or wrong.
    """
    serving = settings.serving
    cert = _pick(settings, certfile, "--tls-certfile", serving.tls_certfile, "tls_certfile")
    key = _pick(settings, keyfile, "--tls-keyfile", serving.tls_keyfile, "tls_keyfile")
    ca = _pick(settings, ca_certs, "--tls-ca-certs", serving.tls_ca_certs, "tls_ca_certs")
    if cert is None and key is None:
        if ca is not None:
            raise ConfigError(
                "client CA certificates are set but TLS is not: give the server's certificate "
                "and key too (--tls-certfile and --tls-keyfile)",
                source=ca.origin,
            )
        return None
    if cert is None or key is None:
        given, missing = (key, "certificate") if cert is None else (cert, "private key")
        assert given is not None
        raise ConfigError(
            f"TLS needs both a certificate and its private key, and the {missing} is missing: "
            "give --tls-certfile and --tls-keyfile (or [serving] tls_certfile and tls_keyfile) "
            "together, or neither",
            source=given.origin,
        )
    password = serving.tls_keyfile_password
    for given in (cert, key, ca):
        if given is not None:
            _check_readable(given)
    _check_certificates(cert, "the server's certificate")
    _check_key(cert, key, password)
    if ca is not None:
        _check_certificates(ca, "client CA certificates")
    return ServerTLS(
        cert.path, key.path, keyfile_password=password, ca_certs=None if ca is None else ca.path
    )


def _pick(
    settings: Settings, option: Path | None, option_name: str, setting: str | None, key: str
) -> _Given | None:
    """The option as given (relative to the working directory, like any command-line path),
    else the setting (relative to the project directory, like every path in keel.toml)."""
    if option is not None:
        return _Given(option.expanduser().absolute(), option_name)
    if setting:
        return _Given(settings.project_path(setting), f"[serving] {key}")
    return None


def _check_readable(given: _Given) -> None:
    try:
        with given.path.open("rb") as file:
            file.read(1)
    except FileNotFoundError:
        raise ConfigError(f"{given.path} does not exist", source=given.origin) from None
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(f"{given.path} cannot be read ({reason})", source=given.origin) from None


def _check_certificates(given: _Given, what: str) -> None:
    """At least one PEM certificate in the file (``load_cert_chain`` only says "PEM lib" for a
    certificate file it cannot parse, the same words as for a bad key)."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=given.path)
    except ssl.SSLError:
        raise ConfigError(
            f"{given.path} holds no PEM certificate: {what} must be PEM "
            "('-----BEGIN CERTIFICATE-----')",
            source=given.origin,
        ) from None


class _NoPassword(Exception):
    """Raised by the password callback when the key is encrypted and no password is set; a
    callback, because without one OpenSSL would prompt for it on the terminal."""


def _check_key(cert: _Given, key: _Given, password: str | None) -> None:
    def give_password() -> str:
        if password is None:
            raise _NoPassword
        return password

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert.path, key.path, give_password)
    except _NoPassword:
        raise ConfigError(
            f"{key.path} is encrypted: set its password in [serving] tls_keyfile_password "
            "(e.g. KEEL_SERVING__TLS_KEYFILE_PASSWORD)",
            source=key.origin,
        ) from None
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            message = f"{key.path} is not the private key of the certificate {cert.path}"
        elif password is not None:
            message = f"{key.path} is not a PEM private key, or tls_keyfile_password is wrong"
        else:
            message = f"{key.path} is not a PEM private key ('-----BEGIN PRIVATE KEY-----')"
        raise ConfigError(message, source=key.origin) from None
