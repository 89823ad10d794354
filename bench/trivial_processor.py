"""The floor: an ext_proc server that does as little as a router can.

It parses each chat body as JSON and sets one routing header, with the route
cache cleared, like switchyard does; observe streams are read and dropped.
Envoy runs switchyard's own rendered config in front of it, so the difference
between this and switchyard is switchyard's Python work, and the difference
between this and the ceiling is what gRPC ext_proc itself costs.

    python bench/trivial_processor.py --listen 127.0.0.1:50051 --route code
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extproc.server import ext_proc_handler
from proto import core_pb2, ext_proc_pb2

ROUTE_HEADER = "x-switchyard-route"
CONTINUE = ext_proc_pb2.CommonResponse()


class TrivialProcessor:
    def __init__(self, route: str) -> None:
        self._routed = ext_proc_pb2.ProcessingResponse(
            request_body=ext_proc_pb2.BodyResponse(
                response=ext_proc_pb2.CommonResponse(
                    header_mutation=ext_proc_pb2.HeaderMutation(
                        set_headers=[
                            core_pb2.HeaderValueOption(
                                header=core_pb2.HeaderValue(
                                    key=ROUTE_HEADER, raw_value=route.encode()
                                ),
                                append_action=core_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
                            )
                        ]
                    ),
                    clear_route_cache=True,
                )
            )
        )

    async def Process(
        self,
        request_iterator: AsyncIterator[ext_proc_pb2.ProcessingRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[ext_proc_pb2.ProcessingResponse]:
        async for request in request_iterator:
            if request.observability_mode:
                continue  # Envoy expects no answer on observe streams
            phase = request.WhichOneof("request")
            if phase == "request_body":
                json.loads(request.request_body.body)  # the work any router must do
                yield self._routed
            elif phase == "request_headers":
                yield ext_proc_pb2.ProcessingResponse(
                    request_headers=ext_proc_pb2.HeadersResponse(response=CONTINUE)
                )
            else:  # not configured in the rendered filter; answered unchanged anyway
                yield ext_proc_pb2.ProcessingResponse(
                    response_headers=ext_proc_pb2.HeadersResponse(response=CONTINUE)
                )


async def serve(listen: str, route: str) -> None:
    # The same server options as switchyard's (extproc.server.start_grpc_server).
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", 70 * 1024 * 1024), ("grpc.so_reuseport", 0)]
    )
    server.add_generic_rpc_handlers((ext_proc_handler(TrivialProcessor(route).Process),))
    server.add_insecure_port(listen)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"trivial processor on {listen}", flush=True)
    await stop.wait()
    await server.stop(grace=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="host:port")
    parser.add_argument("--route", required=True, help=f"the value of {ROUTE_HEADER}")
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.route))


if __name__ == "__main__":
    main()
