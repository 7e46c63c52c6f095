"""Health that means something: SERVING only while every dependency answers its check."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from grpc_health.v1 import health, health_pb2

from sanad.errors import RateLimited
from sanad.telemetry.metrics import DEPENDENCY_UP

log = logging.getLogger("sanad.health")

Check = Callable[[], Awaitable[bool]]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# The health service name liveness and startup probes ask: SERVING whenever the process
# answers at all. Readiness asks the overall status, which an outage of MongoDB or RabbitMQ
# turns NOT_SERVING; a liveness probe asking that would restart every pod in a long outage and
# lose what the processes hold for it (audit events waiting for MongoDB).
LIVENESS = "liveness"


class CappedHealth(health.aio.HealthServicer):
    """gRPC health whose Watch streams are capped per process: health is open to every caller,
    charged to no identity's rate or stream cap, and a Watch stream costs the server a task
    for as long as its caller keeps it. Probes and our clients ask Check; Watch serves
    client-side health checking, one stream a connection."""

    def __init__(self, max_watches: int) -> None:
        super().__init__()
        self.max_watches = max_watches
        self.watching = 0

    async def Watch(self, request: Any, context: Any) -> None:
        if self.watching >= self.max_watches:
            raise RateLimited(
                f"at most {self.max_watches} health Watch streams may be open at once; ask Check",
                retry_after_s=1.0,
            )
        self.watching += 1
        try:
            await super().Watch(request, context)
        finally:
            self.watching -= 1


class HealthReporter:
    """Runs named dependency checks on an interval and publishes the verdict.

    The overall status ("") and every listed service name share one verdict:
    a service with a dead dependency cannot serve any of its RPCs.
    """

    def __init__(
        self,
        servicer: health.aio.HealthServicer,
        service_names: Iterable[str],
        checks: dict[str, Check],
        interval_s: float = 1.0,
    ) -> None:
        self.servicer = servicer
        self.service_names = ["", *service_names]
        self.checks = checks
        self.interval_s = interval_s
        self.serving = False
        self._stopping = False
        # Each failing check's reason, and the checks that have passed at least once.
        self.failing: dict[str, str] = {}
        self._passed: set[str] = set()

    async def check_once(self) -> bool:
        """Run every check once and publish SERVING or NOT_SERVING."""
        results = await asyncio.gather(*(self._run(name, c) for name, c in self.checks.items()))
        await self.publish(all(results) and not self._stopping)
        return self.serving

    async def run(self) -> None:
        """Check forever; cancelled at shutdown."""
        while True:
            await self.check_once()
            await asyncio.sleep(self.interval_s)

    async def shutdown(self) -> None:
        """NOT_SERVING from now on, before the server stops accepting calls."""
        self._stopping = True
        await self.publish(False)

    async def _run(self, name: str, check: Check) -> bool:
        timeout_s = max(self.interval_s, 2.0)
        try:
            async with asyncio.timeout(timeout_s):
                ok = bool(await check())
            why = "" if ok else "answered not ready"
        except TimeoutError:
            ok, why = False, f"no answer within {timeout_s:g}s"
        except Exception as error:
            # The error's kind only: a message may carry a URL with its credentials.
            ok, why = False, f"raised {type(error).__name__}"
        DEPENDENCY_UP.labels(name).set(1 if ok else 0)
        self._note(name, why)
        return ok

    def _note(self, name: str, why: str) -> None:
        """Log a check's changes: when it starts failing (or fails otherwise), and passes again.
        A check that has never passed is starting up: its failures are logged at INFO."""
        if not why:
            if self.failing.pop(name, None) is not None:
                log.info("health check %s passes%s", name, " again" if name in self._passed else "")
            self._passed.add(name)
        elif self.failing.get(name) != why:
            self.failing[name] = why
            level = logging.WARNING if name in self._passed else logging.INFO
            log.log(level, "health check %s fails: %s", name, why)

    async def publish(self, serving: bool) -> None:
        if serving != self.serving:
            failing = ", ".join(sorted(self.failing)) or "stopping"
            log.info("health %s", "SERVING" if serving else f"NOT_SERVING ({failing})")
        self.serving = serving
        status = SERVING if serving else NOT_SERVING
        for name in self.service_names:
            await self.servicer.set(name, status)
        await self.servicer.set(LIVENESS, SERVING)
