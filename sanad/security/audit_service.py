"""AuditService: the admin-only listing of the audit trail (the policy table admits admins only)."""

from typing import Any

from sanad.errors import Violation, check, collected
from sanad.rpc.timestamps import time_field
from sanad.security.audit import to_proto
from sanad.security.audit_listing import AuditListing, AuditQuery, page_of
from sanad.v1 import audit_pb2, audit_pb2_grpc

SERVICE_NAME = audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    """Translates ListAuditEvents to an AuditQuery and back."""

    def __init__(self, listing: AuditListing) -> None:
        self.listing = listing

    async def ListAuditEvents(
        self, request: audit_pb2.ListAuditEventsRequest, context: Any
    ) -> audit_pb2.ListAuditEventsResponse:
        found: list[Violation] = []
        query = AuditQuery(
            subject=request.subject,
            rpc=request.rpc,
            outcome=request.outcome,
            target_value=request.target_value,
            start=collected(found, lambda: time_field(request, "start_time")),
            end=collected(found, lambda: time_field(request, "end_time")),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        collected(found, lambda: page_of(query))  # every bad field named at once
        check(found)
        events, token = await self.listing.find(query)
        return audit_pb2.ListAuditEventsResponse(
            events=[to_proto(e) for e in events], next_page_token=token
        )


def add_to_server(servicer: AuditServicer, server: Any) -> None:
    """Register the servicer on a grpc.aio server."""
    audit_pb2_grpc.add_AuditServiceServicer_to_server(servicer, server)
