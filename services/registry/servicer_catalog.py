"""The catalogue RPCs of RegistryService: protobuf in, one operation, protobuf out."""

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from sanad.deadline import caller_deadline
from sanad.paging import encode_token
from sanad.rpc.replies import fitted
from sanad.rpc.timestamps import time_field
from sanad.security.identity import current
from sanad.v1 import registry_pb2 as pb
from services.registry.catalog import PAGE_KIND, CatalogOperations
from services.registry.convert import (
    service_filter_from_proto,
    service_from_proto,
    service_to_proto,
)

Context: TypeAlias = grpc.aio.ServicerContext


class CatalogRpcs:
    """Publishing, versioning, retiring, reading and watching e-services."""

    catalog: CatalogOperations
    max_message_bytes: int

    async def AddCatalogService(
        self, request: pb.AddCatalogServiceRequest, context: Context
    ) -> pb.AddCatalogServiceResponse:
        service = await self.catalog.add(service_from_proto(request.service), current())
        return pb.AddCatalogServiceResponse(service=service_to_proto(service))

    async def UpdateCatalogService(
        self, request: pb.UpdateCatalogServiceRequest, context: Context
    ) -> pb.UpdateCatalogServiceResponse:
        patch = service_from_proto(request.service)
        service = await self.catalog.update(
            patch, list(request.update_mask.paths), current(), deadline=caller_deadline(context)
        )
        return pb.UpdateCatalogServiceResponse(service=service_to_proto(service))

    async def RetireCatalogService(
        self, request: pb.RetireCatalogServiceRequest, context: Context
    ) -> pb.RetireCatalogServiceResponse:
        service = await self.catalog.retire(request.code, deadline=caller_deadline(context))
        return pb.RetireCatalogServiceResponse(service=service_to_proto(service))

    async def GetCatalogService(
        self, request: pb.GetCatalogServiceRequest, context: Context
    ) -> pb.GetCatalogServiceResponse:
        service = await self.catalog.get(request.code)
        return pb.GetCatalogServiceResponse(service=service_to_proto(service))

    async def ListCatalogServices(
        self, request: pb.ListCatalogServicesRequest, context: Context
    ) -> pb.ListCatalogServicesResponse:
        wanted = service_filter_from_proto(request)
        page = await self.catalog.list_page(wanted, request.page_size, request.page_token)
        services, after = fitted(
            [service_to_proto(s) for s in page.items],
            lambda s: s.code,
            page.next_after,
            self.max_message_bytes,
        )
        return pb.ListCatalogServicesResponse(
            services=services, next_page_token=encode_token(PAGE_KIND, wanted, after)
        )

    async def WatchCatalog(
        self, request: pb.WatchCatalogRequest, context: Context
    ) -> AsyncIterator[pb.WatchCatalogResponse]:
        since_time = time_field(request, "since_update_time")
        async for event in self.catalog.watch(request.since_revision, context.done, since_time):
            if isinstance(event, int):
                yield pb.WatchCatalogResponse(synced=pb.WatchSynced(revision=event))
            else:
                yield pb.WatchCatalogResponse(service=service_to_proto(event))
