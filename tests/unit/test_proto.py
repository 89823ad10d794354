"""Our ext_proc .proto files against Envoy's published API (the xds-protos package).

Our messages sit in switchyard's own proto package, so both load in one process:
bytes cross both ways and must decode to the same fields on each side.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from envoy.service.ext_proc.v3 import external_processor_pb2 as envoy_ext_proc
from google.protobuf import descriptor_pb2
from google.protobuf.json_format import MessageToDict, ParseDict

from extproc.server import EXT_PROC_SERVICE
from proto import core_pb2, ext_proc_pb2, http_status_pb2, processing_mode_pb2

REPO = Path(__file__).resolve().parents[2]


def _header(key: str, value: str) -> core_pb2.HeaderValue:
    return core_pb2.HeaderValue(key=key, raw_value=value.encode())


def _messages() -> list[ext_proc_pb2.ProcessingRequest | ext_proc_pb2.ProcessingResponse]:
    Mode = processing_mode_pb2.ProcessingMode
    headers = core_pb2.HeaderMap(
        headers=[_header(":path", "/v1/chat/completions"), _header("x-session-id", "s1")]
    )
    mutation = ext_proc_pb2.HeaderMutation(
        set_headers=[
            core_pb2.HeaderValueOption(
                header=_header("x-switchyard-route", "clinical"),
                append_action=core_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
        ],
        remove_headers=["x-drop"],
    )
    return [
        ext_proc_pb2.ProcessingRequest(
            request_headers=ext_proc_pb2.HttpHeaders(headers=headers, end_of_stream=False),
            protocol_config=ext_proc_pb2.ProtocolConfiguration(
                request_body_mode=Mode.BUFFERED, send_body_without_waiting_for_header_response=True
            ),
        ),
        ext_proc_pb2.ProcessingRequest(
            request_body=ext_proc_pb2.HttpBody(body=b'{"messages": []}', end_of_stream=True)
        ),
        ext_proc_pb2.ProcessingRequest(
            response_headers=ext_proc_pb2.HttpHeaders(headers=headers), observability_mode=True
        ),
        ext_proc_pb2.ProcessingRequest(
            response_body=ext_proc_pb2.HttpBody(body=b"data: x\n\n", end_of_stream=True),
            observability_mode=True,
        ),
        ext_proc_pb2.ProcessingRequest(
            request_trailers=ext_proc_pb2.HttpTrailers(trailers=headers)
        ),
        ext_proc_pb2.ProcessingResponse(
            request_headers=ext_proc_pb2.HeadersResponse(response=ext_proc_pb2.CommonResponse()),
            mode_override=Mode(request_body_mode=Mode.NONE, response_header_mode=Mode.SKIP),
        ),
        ext_proc_pb2.ProcessingResponse(
            request_body=ext_proc_pb2.BodyResponse(
                response=ext_proc_pb2.CommonResponse(
                    status=ext_proc_pb2.CommonResponse.CONTINUE_AND_REPLACE,
                    header_mutation=mutation,
                    body_mutation=ext_proc_pb2.BodyMutation(body=b"{}"),
                    clear_route_cache=True,
                )
            )
        ),
        ext_proc_pb2.ProcessingResponse(
            immediate_response=ext_proc_pb2.ImmediateResponse(
                status=http_status_pb2.HttpStatus(code=http_status_pb2.PayloadTooLarge),
                headers=mutation,
                body=b'{"error": {}}',
                details="switchyard_request_too_large",
            )
        ),
        ext_proc_pb2.ProcessingResponse(
            request_trailers=ext_proc_pb2.TrailersResponse(header_mutation=mutation)
        ),
    ]


def _as_dict(message: object) -> dict:
    return MessageToDict(message, preserving_proto_field_name=True)  # type: ignore[arg-type]


def test_every_message_we_use_is_wire_compatible_with_envoys_api() -> None:
    for message in _messages():
        theirs_class = getattr(envoy_ext_proc, type(message).__name__)
        # Ours -> theirs: every field arrives under the same name with the same value.
        decoded_by_envoy_api = theirs_class.FromString(message.SerializeToString())
        assert _as_dict(decoded_by_envoy_api) == _as_dict(message)
        # Theirs -> ours: bytes built from Envoy's classes decode to the same message.
        theirs = ParseDict(_as_dict(message), theirs_class())
        assert type(message).FromString(theirs.SerializeToString()) == message


def test_the_served_method_is_envoys() -> None:
    service = envoy_ext_proc.DESCRIPTOR.services_by_name["ExternalProcessor"]
    assert service.full_name == EXT_PROC_SERVICE
    method = service.methods_by_name["Process"]
    assert method.client_streaming and method.server_streaming


def _clear_json_names(message: descriptor_pb2.DescriptorProto) -> None:
    for field in message.field:
        field.ClearField("json_name")
    for nested in message.nested_type:
        _clear_json_names(nested)


def test_generated_code_is_fresh() -> None:
    """The committed *_pb2.py files describe exactly what the .proto files say (`make proto`)."""
    from grpc_tools import protoc

    modules = {
        "core": core_pb2,
        "http_status": http_status_pb2,
        "processing_mode": processing_mode_pb2,
        "ext_proc": ext_proc_pb2,
    }
    from proto import health_pb2

    modules["health"] = health_pb2
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        args = [
            "protoc",
            "-I",
            str(REPO),
            f"-I{Path(protoc.__file__).parent / '_proto'}",
            f"--descriptor_set_out={out}",
        ]
        args += [f"proto/{name}.proto" for name in modules]
        assert protoc.main(args) == 0
        fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    by_name = {f.name: f for f in fresh.file}
    for file in by_name.values():  # generated code leaves json_name implicit
        for message in file.message_type:
            _clear_json_names(message)
    for name, module in modules.items():
        committed = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
        stale = f"proto/{name}_pb2.py is stale: run make proto"
        assert committed == by_name[f"proto/{name}.proto"], stale
