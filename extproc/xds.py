"""Envoy's listeners, routes and clusters, served to Envoy over xDS by switchyard itself.

Envoy opens one aggregated stream (ADS, state of the world) to switchyard's gRPC port and
asks for clusters, listeners and route configurations; switchyard answers with what
extproc.envoy_config builds from the running config, as typed messages of Envoy's own API
(the xds-protos package). Envoy acknowledges each answer by asking again with the answer's
nonce and version (ACK), or rejects it with an error_detail (NACK) and keeps what it had.

`publish` offers a new set to every connected Envoy, clusters first, then listeners, then
routes (a route never names a cluster Envoy does not have yet), each type only once the
previous one is acknowledged, and returns when all have acknowledged it, or with the reason
when one rejected it or did not answer in time. extproc.reload decides when the request path
switches (only after an acknowledgment); this module knows nothing of the request path.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from extproc.envoy_config import EnvoyResources
from extproc.envoy_config.typed import CLUSTERS, KIND, LISTENERS, ROUTES

log = logging.getLogger("switchyard.xds")

ORDER = (CLUSTERS, LISTENERS, ROUTES)
"""Make before break: what a resource refers to reaches Envoy first."""
REMOVAL_ORDER = tuple(reversed(ORDER))
"""Break after: what refers to a resource leaves Envoy first."""


@dataclass(frozen=True)
class Snapshot:
    """One version of everything Envoy takes from switchyard, as Envoy's messages."""

    label: str
    """The config version whose routes it carries."""
    resources: dict[str, dict[str, Message]]
    """Per type URL, per resource name."""


def snapshot(served: EnvoyResources) -> Snapshot:
    """What Envoy gets for `served`: its messages as they are (built as Envoy's own
    messages, so a field Envoy's API does not have already failed in building them)."""
    return Snapshot(served.version, served.by_type())


def _payload(snap: Snapshot, type_url: str, names: tuple[str, ...]) -> tuple[str, list[Message]]:
    """What a stream gets for one type: the resources it asked for (routes are asked for
    by name; clusters and listeners all), and their version (a digest: same resources,
    same version)."""
    items = snap.resources[type_url]
    if type_url == ROUTES and names:
        items = {name: items[name] for name in names if name in items}
    digest = hashlib.sha256()
    for name in sorted(items):
        digest.update(name.encode() + b"\0")
        digest.update(items[name].SerializeToString(deterministic=True))
    return digest.hexdigest()[:12], [items[name] for name in sorted(items)]


@dataclass
class _Sent:
    version: str
    nonce: str
    names: tuple[str, ...]
    answer: asyncio.Future[str | None]
    """Envoy's answer to this response: None (acknowledged, or superseded, or the stream
    ended) or the error it rejected it with."""


@dataclass(eq=False)
class EnvoyStream:
    """One connected Envoy (hashed by identity: a set holds the connected ones)."""

    peer: str
    connected_at: float = field(default_factory=time.time)
    node: str = ""
    outbox: asyncio.Queue[discovery_pb2.DiscoveryResponse | None] = field(
        default_factory=asyncio.Queue
    )
    subscribed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sent: dict[str, _Sent] = field(default_factory=dict)
    acked: dict[str, str] = field(default_factory=dict)
    config: str = ""
    """The config version every type of which this Envoy has acknowledged."""
    rejected: str = ""
    """The last error this Envoy rejected a version with."""


class XdsServer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, current: Snapshot) -> None:
        self._snapshot = current
        self._streams: set[EnvoyStream] = set()
        self._nonces = itertools.count(1)
        self._publishing = asyncio.Lock()

    @property
    def current(self) -> Snapshot:
        return self._snapshot

    @property
    def connected(self) -> int:
        return len(self._streams)

    def close(self) -> None:
        """Ends every Envoy's stream: an ADS stream never ends by itself, so a stopping
        server would otherwise wait out its whole grace period for it."""
        for stream in self._streams:
            stream.outbox.put_nowait(None)

    async def StreamAggregatedResources(
        self,
        request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        stream = EnvoyStream(peer=context.peer())
        self._streams.add(stream)
        reader = asyncio.create_task(self._read(stream, request_iterator))
        try:
            while True:
                response = await stream.outbox.get()
                if response is None:
                    return
                yield response
        finally:
            reader.cancel()
            self._streams.discard(stream)
            for sent in stream.sent.values():
                if not sent.answer.done():
                    sent.answer.set_result(None)
            log.info("xds: Envoy %s disconnected", stream.node or stream.peer)

    async def _read(
        self, stream: EnvoyStream, requests: AsyncIterator[discovery_pb2.DiscoveryRequest]
    ) -> None:
        try:
            async for request in requests:
                self._on_request(stream, request)
        except Exception as exc:  # the stream broke: the writer ends too
            log.debug("xds: stream from %s ended: %s", stream.peer, exc)
        stream.outbox.put_nowait(None)

    def _on_request(self, stream: EnvoyStream, request: discovery_pb2.DiscoveryRequest) -> None:
        if request.HasField("node") and not stream.node:
            stream.node = request.node.id
            log.info("xds: Envoy %s (%s) connected", stream.node, stream.peer)
        type_url = request.type_url
        if type_url not in KIND:
            return  # a type switchyard does not serve (Envoy asks for none by default)
        names = tuple(request.resource_names)
        sent = stream.sent.get(type_url)
        if sent is not None and request.response_nonce:
            if request.response_nonce != sent.nonce:
                return  # an answer to a response already superseded
            if request.HasField("error_detail"):
                stream.rejected = request.error_detail.message
                log.error(
                    "xds: Envoy %s rejected %s version %s: %s",
                    stream.node or stream.peer,
                    KIND[type_url],
                    sent.version,
                    request.error_detail.message,
                )
                _settle(sent, request.error_detail.message or "rejected")
            else:
                stream.acked[type_url] = sent.version
                _settle(sent, None)
                self._note_config(stream)
            stream.subscribed[type_url] = names
            if names != sent.names:  # Envoy now wants other route configurations
                self._send(stream, type_url)
            return
        # A first request for this type (also after Envoy reconnects): the current version.
        stream.subscribed[type_url] = names
        self._send(stream, type_url)

    def _send(self, stream: EnvoyStream, type_url: str) -> _Sent:
        names = stream.subscribed[type_url]
        version, items = _payload(self._snapshot, type_url, names)
        previous = stream.sent.get(type_url)
        if previous is not None:
            _settle(previous, None)
        nonce = str(next(self._nonces))
        packed = []
        for item in items:
            resource = any_pb2.Any()
            resource.Pack(item)
            packed.append(resource)
        stream.outbox.put_nowait(
            discovery_pb2.DiscoveryResponse(
                version_info=version, resources=packed, type_url=type_url, nonce=nonce
            )
        )
        sent = _Sent(version, nonce, names, asyncio.get_running_loop().create_future())
        stream.sent[type_url] = sent
        return sent

    def _note_config(self, stream: EnvoyStream) -> None:
        snap = self._snapshot
        if all(
            stream.acked.get(t) == _payload(snap, t, stream.subscribed.get(t, ()))[0] for t in ORDER
        ):
            stream.config = snap.label

    async def publish(
        self, snap: Snapshot, timeout_s: float, order: tuple[str, ...] = ORDER
    ) -> str | None:
        """Offers `snap` to every connected Envoy, one type after another in `order` (ORDER
        when `snap` adds resources, REMOVAL_ORDER when it only takes some away). None once
        each Envoy has acknowledged all of it; otherwise why not (the first rejection, or
        who did not answer in time). An Envoy that connects meanwhile gets `snap` as it
        subscribes."""
        async with self._publishing:
            self._snapshot = snap
            streams = list(self._streams)
            try:
                results = await asyncio.wait_for(
                    asyncio.gather(*(self._push(stream, snap, order) for stream in streams)),
                    timeout_s,
                )
            except TimeoutError:
                late = [s.node or s.peer for s in streams if s.config != snap.label]
                return f"no answer within {timeout_s:g}s from Envoy {', '.join(late)}"
            return next((result for result in results if result is not None), None)

    async def _push(
        self, stream: EnvoyStream, snap: Snapshot, order: tuple[str, ...]
    ) -> str | None:
        for type_url in order:
            if type_url not in stream.subscribed:
                continue  # Envoy gets this type's current version when it asks for it
            version, _ = _payload(snap, type_url, stream.subscribed[type_url])
            sent = stream.sent.get(type_url)
            if stream.acked.get(type_url) == version:
                continue
            if sent is None or sent.version != version or sent.answer.done():
                sent = self._send(stream, type_url)
            error = await sent.answer
            if error is not None:
                return f"Envoy {stream.node or stream.peer} rejected {KIND[type_url]}: {error}"
        if stream in self._streams:
            stream.config = snap.label
        return None

    def status(self) -> list[dict[str, object]]:
        """Each connected Envoy: the config version it runs and what it acknowledged."""
        return [
            {
                "node": stream.node,
                "peer": stream.peer,
                "connected_at": stream.connected_at,
                "config_version": stream.config or None,
                "acked": {KIND[t]: v for t, v in stream.acked.items()},
                "last_rejection": stream.rejected or None,
            }
            for stream in sorted(self._streams, key=lambda s: s.connected_at)
        ]


def _settle(sent: _Sent, error: str | None) -> None:
    if not sent.answer.done():
        sent.answer.set_result(error)


def add_to_server(server: grpc.aio.Server, xds: XdsServer) -> None:
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(xds, server)
