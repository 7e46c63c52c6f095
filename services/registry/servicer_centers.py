"""The centre and licence RPCs of RegistryService: protobuf in, one operation, protobuf out."""

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from sanad.deadline import caller_deadline
from sanad.paging import encode_token
from sanad.rpc.identity import caller
from sanad.rpc.replies import fitted
from sanad.rpc.timestamps import time_field
from sanad.v1 import registry_pb2 as pb
from services.registry.centers import PAGE_KIND, CenterOperations
from services.registry.convert import (
    center_filter_from_proto,
    center_from_proto,
    center_to_proto,
    expected_revision,
    licence_action_from_proto,
)

Context: TypeAlias = grpc.aio.ServicerContext


class CenterRpcs:
    """Registration, reading, listing and changing centres; watching them."""

    centers: CenterOperations
    max_message_bytes: int

    async def RegisterCenter(
        self, request: pb.RegisterCenterRequest, context: Context
    ) -> pb.RegisterCenterResponse:
        center = await self.centers.register(center_from_proto(request.center))
        return pb.RegisterCenterResponse(center=center_to_proto(center))

    async def GetCenter(
        self, request: pb.GetCenterRequest, context: Context
    ) -> pb.GetCenterResponse:
        center = await self.centers.get(request.id)
        return pb.GetCenterResponse(center=center_to_proto(center))

    async def ListCenters(
        self, request: pb.ListCentersRequest, context: Context
    ) -> pb.ListCentersResponse:
        wanted = center_filter_from_proto(request)
        page = await self.centers.list_page(wanted, request.page_size, request.page_token)
        centers, after = fitted(
            [center_to_proto(c) for c in page.items],
            lambda c: c.id,
            page.next_after,
            self.max_message_bytes,
        )
        return pb.ListCentersResponse(
            centers=centers, next_page_token=encode_token(PAGE_KIND, wanted, after)
        )

    async def UpdateCenter(
        self, request: pb.UpdateCenterRequest, context: Context
    ) -> pb.UpdateCenterResponse:
        patch = center_from_proto(request.center)
        center = await self.centers.update(
            patch,
            list(request.update_mask.paths),
            expected_revision(request),
            deadline=caller_deadline(context),
        )
        return pb.UpdateCenterResponse(center=center_to_proto(center))

    async def TransitionLicence(
        self, request: pb.TransitionLicenceRequest, context: Context
    ) -> pb.TransitionLicenceResponse:
        action = licence_action_from_proto(request.action, "action")
        center = await self.centers.transition_licence(
            request.center_id,
            action,
            caller(context),
            request.reason,
            deadline=caller_deadline(context),
        )
        return pb.TransitionLicenceResponse(center=center_to_proto(center))

    async def SetCenterServices(
        self, request: pb.SetCenterServicesRequest, context: Context
    ) -> pb.SetCenterServicesResponse:
        center = await self.centers.set_services(
            request.center_id,
            tuple(request.offered_service_codes),
            tuple(request.blocked_service_codes),
            expected_revision(request),
            deadline=caller_deadline(context),
        )
        return pb.SetCenterServicesResponse(center=center_to_proto(center))

    async def WatchCenters(
        self, request: pb.WatchCentersRequest, context: Context
    ) -> AsyncIterator[pb.WatchCentersResponse]:
        since_time = time_field(request, "since_update_time")
        async for event in self.centers.watch(request.since_revision, context.done, since_time):
            if isinstance(event, int):
                yield pb.WatchCentersResponse(synced=pb.WatchSynced(revision=event))
            else:
                yield pb.WatchCentersResponse(center=center_to_proto(event))
