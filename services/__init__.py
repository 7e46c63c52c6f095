"""The gRPC services of Sanad Mesh: registry, intake and metrics."""
