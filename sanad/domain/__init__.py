"""Domain types and rules used by more than one deployable; no I/O, no grpc, no pymongo."""
