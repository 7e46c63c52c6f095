"""Sanad Mesh shared library: settings, telemetry, errors, MongoDB, AMQP and shared domain."""
