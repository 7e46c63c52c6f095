"""A gRPC health check for container health checks: `python -m sanad.probe --addr host:port`."""
