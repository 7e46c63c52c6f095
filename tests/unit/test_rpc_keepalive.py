"""Servers accept the keepalive pings our channels send, also on streams idle for a long time."""

from sanad.rpc import channel
from sanad.rpc.server import KEEPALIVE_TIME_MS, KEEPALIVE_TIMEOUT_MS, keepalive_server_options


def test_servers_allow_pings_as_often_as_every_channel_sends_them() -> None:
    client = dict(channel._options(4096, None))  # what every channel gets
    server = dict(keepalive_server_options())
    assert client["grpc.keepalive_time_ms"] == KEEPALIVE_TIME_MS
    assert server["grpc.http2.min_ping_interval_without_data_ms"] <= KEEPALIVE_TIME_MS
    assert server["grpc.keepalive_permit_without_calls"] == 1
    assert server["grpc.http2.max_ping_strikes"] >= 1
    # Keep pinging under a stream that receives nothing, or a dropped connection goes unseen.
    assert client["grpc.http2.max_pings_without_data"] == 0


def test_servers_ping_their_clients_and_close_a_connection_that_does_not_answer() -> None:
    server = dict(keepalive_server_options())
    assert server["grpc.keepalive_time_ms"] == KEEPALIVE_TIME_MS
    assert server["grpc.keepalive_timeout_ms"] == KEEPALIVE_TIMEOUT_MS
    assert server["grpc.http2.ping_timeout_ms"] == KEEPALIVE_TIMEOUT_MS
    assert server["grpc.http2.max_pings_without_data"] == 0
