"""Generated protobuf and gRPC modules of package sanad.v1 (built by `make proto`)."""
