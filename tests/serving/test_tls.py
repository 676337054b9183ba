"""``keel serve`` over HTTPS, through a real server: certificates made in the test by trustme (a
throwaway CA) or by the ``openssl`` command the documentation gives (self-signed).

One server with TLS and one with mutual TLS are shared by the tests of their section; the
checks of bad options run ``keel serve`` and expect it to exit before it serves anything.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from keel import Settings, Workspace
from keel.serving._predlog._segments import list_segments

from ._server_process import ROW, ServerProcess, deploy_churn

PREDICT = "/v1/endpoints/churn/predict"
KEY_PASSWORD = "correct horse battery"


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    """TLS does not depend on the metadata backend: SQLite is enough."""
    return f"sqlite:///{tmp_path / 'meta' / 'keel.db'}"


def _project(root: Path) -> Settings:
    """A project with endpoint ``churn``, for the servers shared by a module's tests."""
    project = root / "project"
    project.mkdir()
    settings = Settings.load(
        project,
        metadata_url=f"sqlite:///{root / 'keel.db'}",
        artifacts_url=str(root / "artifacts"),
        actor="tester",
    )
    with Workspace(settings) as workspace:
        deploy_churn(workspace)
    return settings


def _write_leaf(cert: trustme.LeafCert, directory: Path, name: str) -> tuple[Path, Path]:
    """The certificate chain and the private key of ``cert`` as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    chain, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    return chain, key


def _client(ca: trustme.CA, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    """A client context trusting ``ca`` only, presenting ``cert`` if given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    return context


def _predict(url: str, verify: ssl.SSLContext | bool) -> httpx.Response:
    return httpx.post(f"{url}{PREDICT}", json={"inputs": ROW}, verify=verify, timeout=10)


# -- HTTPS -----------------------------------------------------------------------------------------


class _Https:
    def __init__(self, server: ServerProcess, ca: trustme.CA) -> None:
        self.server, self.ca = server, ca


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Https]:
    """``keel serve --tls-certfile --tls-keyfile`` with a certificate for 127.0.0.1."""
    root = tmp_path_factory.mktemp("https")
    settings = _project(root)
    ca = trustme.CA()
    cert, key = _write_leaf(ca.issue_cert("127.0.0.1"), root / "tls", "server")
    tls = ["--tls-certfile", str(cert), "--tls-keyfile", str(key)]
    with ServerProcess(settings, args=tls, scheme="https", verify=_client(ca)) as server:
        server.wait_ready()
        yield _Https(server, ca)
        server.stop()  # SIGTERM; fails the run if it is ignored


def test_an_https_prediction_verified_against_the_ca_is_answered(https: _Https) -> None:
    response = _predict(https.server.url, _client(https.ca))

    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["prediction"] in (0, 1)


def test_the_startup_line_says_https(https: _Https) -> None:
    https.server.wait_for_output(f"running on https://127.0.0.1:{https.server.port}")


def test_plain_http_to_the_tls_port_gets_no_response(https: _Https) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{https.server.port}/readyz", timeout=10)

    assert _predict(https.server.url, _client(https.ca)).status_code == 200  # still serving


def test_a_client_that_does_not_trust_the_certificate_refuses_the_server(https: _Https) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        _predict(https.server.url, verify=True)  # the system's CAs, not the test's
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        _predict(https.server.url, verify=_client(trustme.CA()))


# -- mutual TLS ------------------------------------------------------------------------------------


class _Mutual:
    def __init__(self, server: ServerProcess, ca: trustme.CA, clients: trustme.CA) -> None:
        self.server, self.ca, self.clients = server, ca, clients


def _encrypted(key: Path, password: str) -> None:
    """Rewrite the PEM private key ``key`` encrypted with ``password``."""
    loaded = serialization.load_pem_private_key(key.read_bytes(), None)
    key.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password.encode()),
        )
    )


@pytest.fixture(scope="module")
def mutual(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Mutual]:
    """mTLS configured in keel.toml (paths relative to the project), with an encrypted key
    whose password comes from the environment; client certificates from a CA of their own."""
    root = tmp_path_factory.mktemp("mutual")
    settings = _project(root)
    ca, clients = trustme.CA(), trustme.CA()
    tls_dir = settings.project_dir / "tls"
    _, key = _write_leaf(ca.issue_cert("127.0.0.1"), tls_dir, "server")
    _encrypted(key, KEY_PASSWORD)
    clients.cert_pem.write_to_path(str(tls_dir / "clients-ca.pem"))
    (settings.project_dir / "keel.toml").write_text(
        '[serving]\ntls_certfile = "tls/server.pem"\ntls_keyfile = "tls/server-key.pem"\n'
        'tls_ca_certs = "tls/clients-ca.pem"\n'
    )
    readiness = _client(ca, clients.issue_cert("monitor@example.com"))
    env = {"KEEL_SERVING__TLS_KEYFILE_PASSWORD": KEY_PASSWORD}
    with ServerProcess(settings, env=env, scheme="https", verify=readiness) as server:
        server.wait_ready()
        yield _Mutual(server, ca, clients)
        server.stop()  # SIGTERM; fails the run if it is ignored


def test_mutual_tls_answers_a_client_with_a_certificate_of_the_clients_ca(mutual: _Mutual) -> None:
    client = _client(mutual.ca, mutual.clients.issue_cert("app@example.com"))

    response = _predict(mutual.server.url, client)

    assert response.status_code == 200, response.text


def test_mutual_tls_refuses_a_client_without_a_certificate(mutual: _Mutual) -> None:
    with pytest.raises(httpx.TransportError):
        _predict(mutual.server.url, _client(mutual.ca))


def test_mutual_tls_refuses_a_certificate_from_another_ca(mutual: _Mutual) -> None:
    stranger = trustme.CA().issue_cert("app@example.com")

    with pytest.raises(httpx.TransportError):
        _predict(mutual.server.url, _client(mutual.ca, stranger))

    member = mutual.clients.issue_cert("app@example.com")
    assert _predict(mutual.server.url, _client(mutual.ca, member)).status_code == 200


# -- several workers, with the documented self-signed certificate ----------------------------------

OPENSSL_SELF_SIGNED = [
    # The command docs/serving-tls.md gives for a local, self-signed certificate.
    *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30"),
    *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
    *("-keyout", "key.pem", "-out", "cert.pem"),
]


@pytest.mark.slow
def test_two_workers_both_serve_https_with_a_self_signed_certificate(
    workspace: Workspace, settings: Settings, tmp_path: Path
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    deploy_churn(workspace)
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    subprocess.run(OPENSSL_SELF_SIGNED, cwd=tls_dir, check=True, capture_output=True)
    trusted = ssl.create_default_context(cafile=tls_dir / "cert.pem")  # its own CA
    temporary = tmp_path / "tmp"  # the supervisor's run directory, removed when it stops
    temporary.mkdir()
    tls = ["--tls-certfile", str(tls_dir / "cert.pem"), "--tls-keyfile", str(tls_dir / "key.pem")]
    log_dir = settings.project_path(settings.serving.prediction_log_dir)

    with ServerProcess(
        settings,
        args=tls,
        workers=2,
        scheme="https",
        verify=trusted,
        env={"TMPDIR": str(temporary)},
    ) as server:
        server.wait_ready()
        # Each prediction on a new connection, until both workers have logged one: every
        # worker that answered did so over TLS, and a plain-HTTP worker would fail a request.
        deadline = time.monotonic() + 60
        answered_by: set[int] = set()
        while len(answered_by) < 2:
            assert time.monotonic() < deadline, f"one worker answered everything:\n{server.output}"
            response = _predict(server.url, trusted)
            assert response.status_code == 200, response.text
            answered_by = {name.pid for _, name in list_segments(log_dir)}
        assert server.pid not in answered_by  # the supervisor serves nothing itself
        server.wait_for_output(f"running on https://127.0.0.1:{server.port}")
        assert server.stop() == 0, server.output
    assert list(temporary.iterdir()) == []


# -- bad options -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A certificate, its key, another certificate's key, an encrypted key and a file that is
    not PEM, in one directory."""
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    _write_leaf(ca.issue_cert("127.0.0.1"), directory, "server")
    _write_leaf(ca.issue_cert("other.example"), directory, "other")
    _write_leaf(ca.issue_cert("127.0.0.1"), directory, "locked")
    _encrypted(directory / "locked-key.pem", KEY_PASSWORD)
    (directory / "notes.txt").write_text("not a certificate\n")
    return directory


BAD_OPTIONS = {
    "only a certificate": (
        "--tls-certfile server.pem",
        "--tls-certfile: TLS needs both a certificate and its private key, and the private key "
        "is missing",
    ),
    "only a key": (
        "--tls-keyfile server-key.pem",
        "--tls-keyfile: TLS needs both a certificate and its private key, and the certificate "
        "is missing",
    ),
    "a missing file": (
        "--tls-certfile server.pem --tls-keyfile gone.pem",
        "--tls-keyfile: {pki}/gone.pem does not exist",
    ),
    "a certificate that is not PEM": (
        "--tls-certfile notes.txt --tls-keyfile server-key.pem",
        "--tls-certfile: {pki}/notes.txt holds no PEM certificate",
    ),
    "a key that is not PEM": (
        "--tls-certfile server.pem --tls-keyfile notes.txt",
        "--tls-keyfile: {pki}/notes.txt is not a PEM private key",
    ),
    "the key of another certificate": (
        "--tls-certfile server.pem --tls-keyfile other-key.pem",
        "--tls-keyfile: {pki}/other-key.pem is not the private key of the certificate "
        "{pki}/server.pem",
    ),
    "an encrypted key without its password": (
        "--tls-certfile locked.pem --tls-keyfile locked-key.pem",
        "--tls-keyfile: {pki}/locked-key.pem is encrypted: set its password in [serving] "
        "tls_keyfile_password",
    ),
    "client CAs without a certificate": (
        "--tls-ca-certs server.pem",
        "--tls-ca-certs: client CA certificates are set but TLS is not",
    ),
    "client CAs that are not PEM": (
        "--tls-certfile server.pem --tls-keyfile server-key.pem --tls-ca-certs notes.txt",
        "--tls-ca-certs: {pki}/notes.txt holds no PEM certificate",
    ),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_bad_tls_options_are_one_error_line_before_anything_starts(
    case: str, pki: Path, settings: Settings
) -> None:
    options, expected = BAD_OPTIONS[case]
    keel = Path(sys.executable).with_name("keel")
    command = [
        str(keel),
        "--dir",
        str(settings.project_dir),
        "serve",
        "--port",
        "0",
        *options.split(),
    ]

    # Relative paths are the working directory's; no input, so a password prompt cannot wait.
    done = subprocess.run(
        command, cwd=pki, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 1, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: {expected.format(pki=pki)}"), line
    assert done.stdout == ""
