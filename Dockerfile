# syntax=docker/dockerfile:1.7
# One image for every Sanad Mesh deployable; the command chooses which one runs, e.g.
#   docker run sanad-mesh:dev python -m services.registry
# The builder generates the protobuf modules and installs the wheel into a virtual environment;
# the runtime copies only that environment, runs as a non-root user, and writes nothing outside
# /tmp, so it runs with a read-only root filesystem. The dev extra (SecantusDB, test tools) is
# never installed here.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The same grpcio-tools pin as pyproject.toml, so generated code matches `make proto`.
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install grpcio-tools==1.85.1
COPY pyproject.toml README.md ./
COPY protos ./protos
COPY sanad ./sanad
COPY services ./services
COPY workers ./workers
RUN rm -f sanad/v1/*_pb2.py sanad/v1/*_pb2_grpc.py sanad/v1/*_pb2.pyi \
    && /opt/build/bin/python -m grpc_tools.protoc -I protos \
        --python_out=. --grpc_python_out=. --pyi_out=. protos/sanad/v1/*.proto \
    && /opt/build/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/sanad \
    && /opt/sanad/bin/pip install /wheels/*.whl \
    && cd / && /opt/sanad/bin/python -c "import sanad.v1.intake_pb2, workers.ingest; \
        from services.registry.reference import ReferenceData; ReferenceData.load()"

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="sanad-mesh" \
      org.opencontainers.image.description="Sanad Mesh gRPC services and queue workers"
# A fixed numeric uid/gid, so Kubernetes runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 sanad \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin sanad
COPY --from=builder /opt/sanad /opt/sanad
ENV PATH=/opt/sanad/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
WORKDIR /tmp
USER 10001:10001
# gRPC ports 50051-50053 (services), 50061-50062 (worker health); metrics 9101-9105.
EXPOSE 50051 50052 50053 50061 50062 9101 9102 9103 9104 9105
STOPSIGNAL SIGTERM
CMD ["sanadctl", "--help"]
