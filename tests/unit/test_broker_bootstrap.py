"""KAFKA_BOOTSTRAP_SERVERS names every broker of a cluster, comma-separated; the consuming
services (FastStream) must be given each address, not the whole list as one host name."""

from __future__ import annotations

import logging

import pytest

from sandbox_common.broker import build_broker

CLUSTER = "127.0.0.1:9092, 127.0.0.1:9192,127.0.0.1:9292"


@pytest.mark.parametrize("durable", [True, False])
def test_each_broker_of_a_comma_separated_list_is_a_bootstrap_server(durable: bool) -> None:
    broker = build_broker(CLUSTER, logging.getLogger("test"), durable=durable)
    # FastStream keeps what it hands aiokafka here; a single str there is taken as one host.
    assert broker._connection_kwargs["bootstrap_servers"] == [
        "127.0.0.1:9092",
        "127.0.0.1:9192",
        "127.0.0.1:9292",
    ]
