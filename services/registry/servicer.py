"""sanad.v1.RegistryService over gRPC: one servicer class assembled from its RPC groups."""

from sanad.rpc.replies import DEFAULT_MAX_MESSAGE_BYTES
from sanad.v1 import registry_pb2 as pb
from sanad.v1 import registry_pb2_grpc
from services.registry.catalog import CatalogOperations
from services.registry.centers import CenterOperations
from services.registry.operations import check_filter_codes
from services.registry.reference import Wilayat
from services.registry.servicer_catalog import CatalogRpcs
from services.registry.servicer_centers import CenterRpcs, Context


class ReferenceRpcs:
    """Governorates, wilayats and agencies from the packaged reference data."""

    centers: CenterOperations

    async def ListGovernorates(
        self, request: pb.ListGovernoratesRequest, context: Context
    ) -> pb.ListGovernoratesResponse:
        return pb.ListGovernoratesResponse(
            governorates=[
                pb.Governorate(
                    code=g.code,
                    name_en=g.name_en,
                    name_ar=g.name_ar,
                    wilayats=[_wilayat(w) for w in g.wilayats],
                )
                for g in self.centers.reference.governorates
            ]
        )

    async def ListWilayats(
        self, request: pb.ListWilayatsRequest, context: Context
    ) -> pb.ListWilayatsResponse:
        check_filter_codes({"governorate_code": request.governorate_code})
        wilayats = self.centers.reference.wilayats(request.governorate_code)
        return pb.ListWilayatsResponse(wilayats=[_wilayat(w) for w in wilayats])

    async def ListAgencies(
        self, request: pb.ListAgenciesRequest, context: Context
    ) -> pb.ListAgenciesResponse:
        return pb.ListAgenciesResponse(
            agencies=[
                pb.Agency(code=a.code, name_en=a.name_en, name_ar=a.name_ar)
                for a in self.centers.reference.agencies
            ]
        )


class RegistryServicer(
    ReferenceRpcs, CenterRpcs, CatalogRpcs, registry_pb2_grpc.RegistryServiceServicer
):
    """Each RPC: protobuf in, one registry operation, protobuf out."""

    def __init__(
        self,
        centers: CenterOperations,
        catalog: CatalogOperations,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.centers = centers
        self.catalog = catalog
        # The server's limit (SANAD_GRPC_MAX_MESSAGE_BYTES): no listing reply passes it.
        self.max_message_bytes = max_message_bytes


def _wilayat(w: Wilayat) -> pb.Wilayat:
    return pb.Wilayat(
        code=w.code,
        governorate_code=w.governorate_code,
        name_en=w.name_en,
        name_ar=w.name_ar,
    )
