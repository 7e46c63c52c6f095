"""sanadctl: the command-line client of the registry, intake and metrics services."""

import os

# gRPC's own log lines (a failed handshake, a target it cannot resolve) would come before, or
# instead of, the one line sanadctl prints for every failure it meets. Read as gRPC loads, so
# set here, before any of sanadctl's modules imports it; an operator's own setting stays.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
