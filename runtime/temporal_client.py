"""Connecting to Temporal with the pydantic data converter, and registering search attributes."""

import asyncio
import dataclasses
import time

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, Plugin
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.service import RPCError

from domain.search_attributes import ALL as SEARCH_ATTRIBUTES
from runtime.embedded_temporal import TemporalConfigError


def data_converter(codec: PayloadCodec | None = None) -> DataConverter:
    """The pydantic data converter, with the payload codec when there is one."""
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


async def connect(
    address: str,
    namespace: str,
    plugins: list[Plugin] | None = None,
    codec: PayloadCodec | None = None,
) -> Client:
    """A client, or a one-line TemporalConfigError naming TEMPORAL_ADDRESS."""
    try:
        return await Client.connect(
            address,
            namespace=namespace,
            data_converter=data_converter(codec),
            plugins=plugins or [],
        )
    except (RuntimeError, RPCError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TemporalConfigError(
            f"TEMPORAL_ADDRESS {address} is unreachable (namespace {namespace}): {reason}"
        ) from exc


async def connect_when_ready(
    address: str, namespace: str, timeout: float, codec: PayloadCodec | None = None
) -> Client:
    """A client once the server is ready: it accepts a connection AND its namespace
    answers (a dev server opens its port before its frontend is healthy). Retried until
    ``timeout``; the TemporalConfigError then carries the last error seen."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client = await connect(address, namespace, codec=codec)
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=namespace)
            )
            return client
        except (TemporalConfigError, RPCError, RuntimeError) as exc:
            last = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if time.monotonic() >= deadline:
                raise TemporalConfigError(
                    f"Temporal at {address} is not ready after {timeout:.0f}s "
                    f"(namespace {namespace}): {last}"
                ) from exc
        await asyncio.sleep(0.25)


def with_plugins(client: Client, plugins: list[Plugin]) -> Client:
    """The same connection with more client plugins (the OpenTelemetry one of
    ``Telemetry.plugins()``); workers built on the returned client, and Replayers given its
    plugins, take those that are also worker plugins."""
    if not plugins:
        return client
    config = client.config()
    return Client(**{**config, "plugins": [*config["plugins"], *plugins]})


async def ensure_search_attributes(client: Client) -> None:
    """Register TenantId/RunPhase/RunStatus on a server that lacks them (idempotent)."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in SEARCH_ATTRIBUTES
        if key.name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
