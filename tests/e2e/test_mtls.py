"""Mutual TLS between Envoy and switchyard's ext_proc port (extproc-only mode's link):
certificates made here with the openssl CLI, the real server, a real Envoy."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from extproc.server import EXT_PROC_SERVICE
from proto import ext_proc_pb2, health_pb2, health_pb2_grpc
from tests.e2e.stack import make_config, running_stack, wait_until

pytestmark = pytest.mark.e2e

ROUTES = [
    {"name": "clinical", "match": {"keywords": ["symptom"]}, "backends": [{"backend": "med"}]},
    {"name": "general", "backends": [{"backend": "cheap"}]},
]
SERVER_NAME = "switchyard.test"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
    )
    return key, cert


def _leaf(directory: Path, name: str, ca: tuple[Path, Path], ext: str) -> tuple[Path, Path]:
    key, csr, cert = (directory / f"{name}.{s}" for s in ("key", "csr", "crt"))
    extfile = directory / f"{name}.ext"
    extfile.write_text(ext)
    _openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        f"/CN={name}",
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca[1]),
        "-CAkey",
        str(ca[0]),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(extfile),
    )
    return key, cert


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("certs")
    ca = _ca(d, "ca")
    other_ca = _ca(d, "other-ca")
    server = _leaf(
        d, "server", ca, f"subjectAltName=DNS:{SERVER_NAME}\nextendedKeyUsage=serverAuth\n"
    )
    envoy = _leaf(d, "envoy", ca, "extendedKeyUsage=clientAuth\n")
    stranger = _leaf(d, "stranger", other_ca, "extendedKeyUsage=clientAuth\n")
    return {
        "ca": ca[1],
        "server.key": server[0],
        "server.crt": server[1],
        "envoy.key": envoy[0],
        "envoy.crt": envoy[1],
        "stranger.key": stranger[0],
        "stranger.crt": stranger[1],
    }


def _tls_config(certs: dict[str, Path]) -> dict[str, dict[str, object]]:
    return {
        "server": {
            "tls": {
                "cert_file": str(certs["server.crt"]),
                "key_file": str(certs["server.key"]),
                "client_ca_file": str(certs["ca"]),
            }
        },
        "envoy": {
            "processor_tls": {
                "cert_file": str(certs["envoy.crt"]),
                "key_file": str(certs["envoy.key"]),
                "ca_file": str(certs["ca"]),
                "server_name": SERVER_NAME,
            }
        },
    }


def _channel(target: str, certs: dict[str, Path], client: str | None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=certs["ca"].read_bytes(),
        private_key=certs[f"{client}.key"].read_bytes() if client else None,
        certificate_chain=certs[f"{client}.crt"].read_bytes() if client else None,
    )
    return grpc.secure_channel(
        target, credentials, options=[("grpc.ssl_target_name_override", SERVER_NAME)]
    )


def _headers_message() -> Iterator[ext_proc_pb2.ProcessingRequest]:
    headers = ext_proc_pb2.HttpHeaders()
    header = headers.headers.headers.add()
    header.key, header.raw_value = ":path", b"/v1/chat/completions"
    yield ext_proc_pb2.ProcessingRequest(request_headers=headers)


def _open_stream(channel: grpc.Channel) -> list[ext_proc_pb2.ProcessingResponse]:
    process = channel.stream_stream(
        f"/{EXT_PROC_SERVICE}/Process",
        request_serializer=ext_proc_pb2.ProcessingRequest.SerializeToString,
        response_deserializer=ext_proc_pb2.ProcessingResponse.FromString,
    )
    return list(process(_headers_message(), timeout=5))


def test_envoy_with_the_rendered_certificates_routes_through_switchyard(
    tmp_path: Path, certs: dict[str, Path]
) -> None:
    config = make_config(["med", "cheap"], ROUTES, "general", **_tls_config(certs))
    with running_stack(tmp_path, config) as stack:
        for _ in range(5):
            reply = stack.client.chat("symptom: cough")
            assert (reply.status, reply.route, reply.backend) == (200, "clinical", "med")
        stats = stack.envoy_stats()
        assert stats["http.ingress.ext_proc.switchyard.streams_started"] >= 5
        assert stats.get("http.ingress.ext_proc.switchyard.failure_mode_allowed", 0) == 0
        assert stats["cluster._switchyard_ext_proc.ssl.handshake"] >= 1


def test_clients_without_a_valid_certificate_are_refused(
    tmp_path: Path, certs: dict[str, Path]
) -> None:
    config = make_config(["med", "cheap"], ROUTES, "general", **_tls_config(certs))
    with running_stack(tmp_path, config) as stack:
        target = stack.config["server"]["listen"]
        with grpc.insecure_channel(target) as channel:  # plaintext
            with pytest.raises(grpc.RpcError) as info:
                _open_stream(channel)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        for client in (None, "stranger"):  # no certificate; one from another CA
            with _channel(target, certs, client) as channel:
                with pytest.raises(grpc.RpcError) as info:
                    _open_stream(channel)
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE, client
                with pytest.raises(grpc.RpcError):
                    health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=5
                    )
        # The control: the same client code with the right certificate gets an answer.
        with _channel(target, certs, "envoy") as channel:
            (answer,) = _open_stream(channel)
            assert answer.HasField("request_headers")
            status = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert status.status == health_pb2.HealthCheckResponse.SERVING


def _accepted(target: str, certs: dict[str, Path], client: str) -> bool:
    with _channel(target, certs, client) as channel:
        try:
            _open_stream(channel)
        except grpc.RpcError:
            return False
        return True


def test_renewed_certificate_files_apply_to_new_connections(
    tmp_path: Path, certs: dict[str, Path]
) -> None:
    # A copy, so the rotation does not touch the module's certificates.
    mounted = {name: tmp_path / path.name for name, path in certs.items()}
    for name, path in certs.items():
        shutil.copy(path, mounted[name])
    config = make_config(["med", "cheap"], ROUTES, "general", **_tls_config(mounted))
    with running_stack(tmp_path, config) as stack:
        target = stack.config["server"]["listen"]
        assert _accepted(target, certs, "envoy") and not _accepted(target, certs, "stranger")
        # As the kubelet updates a mounted Secret: the new file replaces the old at once.
        staged = tmp_path / "ca.new"
        shutil.copy(certs["ca"].with_name("other-ca.crt"), staged)
        os.replace(staged, mounted["ca"])
        wait_until(lambda: _accepted(target, certs, "stranger"), 10, "the new client CA")
        assert not _accepted(target, certs, "envoy")
        assert "certificate files changed" in stack.log("switchyard")
