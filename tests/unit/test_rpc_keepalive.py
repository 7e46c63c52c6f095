"""Servers accept the keepalive pings our channels send, also on streams idle for a long time."""

import inspect

from sanad.registry_watch import Watch
from sanad.rpc import channel
from sanad.rpc.server import (
    KEEPALIVE_TIME_MS,
    KEEPALIVE_TIMEOUT_MS,
    keepalive_server_options,
    server_options,
)


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


def test_channels_try_a_server_that_refused_them_again_within_the_watchs_longest_pause() -> None:
    # gRPC's own reconnect backoff grows to 120 s: after a 90 s registry outage intake and
    # metrics answered UNAVAILABLE for 17 and 33 s more with the registry serving again, their
    # watches' retries (at most 5 s apart) waiting on the channel (restart helper's repro).
    longest_pause_s = inspect.signature(Watch).parameters["backoff_s"].default[1]
    client = dict(channel._options(4096, None))
    assert client["grpc.max_reconnect_backoff_ms"] <= longest_pause_s * 1000


def test_servers_keep_each_streams_receive_window_fixed() -> None:
    # With BDP probing a stream's window grew to megabytes, and a client that did not read its
    # answers had gRPC buffer some 35,000 submissions a stream (resource helper's repro).
    server = dict(server_options(4096))
    assert server["grpc.http2.bdp_probe"] == 0
    assert server["grpc.so_reuseport"] == 0


def test_a_server_of_small_requests_takes_none_larger_and_still_sends_large_replies() -> None:
    default = dict(server_options(4096))
    assert default["grpc.max_receive_message_length"] == 4096
    small = dict(server_options(4096, max_receive_bytes=1024))
    assert small["grpc.max_receive_message_length"] == 1024
    assert small["grpc.max_send_message_length"] == 4096
    # Never above the common limit, which the clients send within.
    assert (
        dict(server_options(512, max_receive_bytes=1024))["grpc.max_receive_message_length"] == 512
    )
