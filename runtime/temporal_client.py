"""Connecting to Temporal with the pydantic data converter, and registering search attributes."""

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from domain.search_attributes import ALL as SEARCH_ATTRIBUTES
from runtime.embedded_temporal import TemporalConfigError


async def connect(
    address: str, namespace: str, interceptors: list[Interceptor] | None = None
) -> Client:
    """A client, or a one-line TemporalConfigError naming TEMPORAL_ADDRESS."""
    try:
        return await Client.connect(
            address,
            namespace=namespace,
            data_converter=pydantic_data_converter,
            interceptors=interceptors or [],
        )
    except (RuntimeError, RPCError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TemporalConfigError(
            f"TEMPORAL_ADDRESS {address} is unreachable (namespace {namespace}): {reason}"
        ) from exc


def with_interceptors(client: Client, interceptors: list[Interceptor]) -> Client:
    """The same connection with more client interceptors (e.g. tracing); workers built
    on the returned client use those that are also worker interceptors."""
    if not interceptors:
        return client
    config = client.config()
    return Client(**{**config, "interceptors": [*config["interceptors"], *interceptors]})


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
