"""`make run`: start a MongoDB-wire server when none is configured, then every process.

Every process serves mutual TLS and requires credentials issued from the dev PKI in `.certs/`
(sanad.devstack.secure); SANAD_DEVSTACK_PLAINTEXT=1 runs them plaintext with an implicit admin.
Each child's output is prefixed with its name. Ctrl-C or SIGTERM stops the
children gracefully (SIGTERM, then a wait), then the database. If a child or the database
dies, everything stops and the exit code is non-zero.
"""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sanad.cli.operations import WORKER_TARGETS
from sanad.devstack import certs, data_lock, mongo_server, preflight, secure
from sanad.devstack.children import Child, start_child, stop_children
from sanad.devstack.layout import (
    MAX_INGEST_WORKERS,
    child_env,
    listening_ports,
    number_setting,
    processes,
    worker_health_targets,
)
from sanad.settings import CommonSettings, amqp_user

DEFAULT_MONGO_PORT = 27717
# The broker every process uses when SANAD_AMQP_URL is unset: the settings' own default.
DEFAULT_AMQP_URL: str = CommonSettings.model_fields["amqp_url"].default
DEFAULT_AMQP_PREFIX: str = CommonSettings.model_fields["amqp_prefix"].default


@dataclass(frozen=True)
class Plan:
    """What to start, from the environment."""

    data_dir: Path
    mongo_port: int
    workers: int
    external_mongo: bool


def plan_from_env() -> Plan:
    """The plan, or SystemExit naming a variable that is not a number in its range."""
    return Plan(
        data_dir=Path(os.environ.get("SANAD_DEVSTACK_DATA", ".data")),
        mongo_port=number_setting("SANAD_DEVSTACK_MONGO_PORT", DEFAULT_MONGO_PORT, 1, 65535),
        workers=number_setting("SANAD_DEVSTACK_WORKERS", 1, 1, MAX_INGEST_WORKERS),
        external_mongo="SANAD_MONGO_URL" in os.environ,
    )


def main() -> None:
    """Run the whole stack in the foreground."""
    plan = plan_from_env()
    env = dict(os.environ)
    database: subprocess.Popen[bytes] | None = None
    try:
        # First: a second make run on this folder is told so, not that its ports are taken
        # or that its broker's queues have consumers already (the first run's).
        held = data_lock.hold(plan.data_dir)  # kept open until this process ends
    except data_lock.FolderInUse as error:
        sys.exit(f"devstack: {error}")
    except OSError as error:
        sys.exit(f"devstack: cannot use SANAD_DEVSTACK_DATA={plan.data_dir}: {error}")
    if problem := preflight.taken_port_problem(listening_ports(env, plan.workers)):
        sys.exit(f"devstack: {problem}")
    amqp_url = env.get("SANAD_AMQP_URL", DEFAULT_AMQP_URL)
    if problem := preflight.amqp_problem(
        amqp_url, env.get("SANAD_AMQP_PREFIX", DEFAULT_AMQP_PREFIX)
    ):
        sys.exit(f"devstack: {problem}")
    if not secure.plaintext(env) and (problem := secure.pki_problem(certs.certs_folder(env))):
        sys.exit(f"devstack: {problem}")
    if plan.external_mongo and (problem := preflight.mongo_problem()):
        sys.exit(f"devstack: {problem}")
    if not plan.external_mongo:
        try:
            database = mongo_server.start(
                plan.mongo_port, plan.data_dir / "mongo", plan.data_dir / "mongo.log"
            )
        except mongo_server.MongoServerError as error:
            sys.exit(f"devstack: cannot start the MongoDB-wire server: {error}")
        env["SANAD_MONGO_URL"] = mongo_server.url(plan.mongo_port)
        print(f"devstack: MongoDB-wire server (SecantusDB) on port {plan.mongo_port}", flush=True)
    # Every child logs in to RabbitMQ as one user: the ingest worker stores what it published
    # (intake's messages, and its own copies), as a deployment names intake's user.
    env.setdefault(
        "SANAD_INGEST_PUBLISHERS", amqp_user(env.get("SANAD_AMQP_URL", DEFAULT_AMQP_URL))
    )
    moved = moved_targets(env)
    env.update(moved)
    _protect(plan, env, {**moved, **given_targets(env)})
    children = [
        start_child(name, module, child_env(env, name)) for name, module in processes(plan.workers)
    ]
    code = _supervise(children, database)
    troubles = stop_children(children)
    if database is not None and database.poll() is not None:
        troubles.append(f"the MongoDB-wire server had exited with code {database.returncode}")
    elif database is not None:
        database.send_signal(signal.SIGTERM)
        try:
            database.wait(timeout=20)
        except subprocess.TimeoutExpired:
            database.kill()
            database.wait()
            troubles.append("the MongoDB-wire server killed after 20 s")
    print(f"devstack: stopped ({'; '.join(troubles) or 'every process drained'})", flush=True)
    held.close()
    sys.exit(code)


def moved_targets(env: dict[str, str]) -> dict[str, str]:
    """SANAD_<SERVICE>_TARGET for each service whose port was moved (SANAD_<SERVICE>_PORT) and
    whose target was not given: the services and sanadctl then reach it where it listens."""
    moved = {}
    for service in ("REGISTRY", "INTAKE", "METRICS"):
        port = env.get(f"SANAD_{service}_PORT")
        if port and f"SANAD_{service}_TARGET" not in env:
            moved[f"SANAD_{service}_TARGET"] = f"127.0.0.1:{port}"
    return moved


def given_targets(env: dict[str, str]) -> dict[str, str]:
    """SANAD_<SERVICE>_TARGET as given to the stack: sanadctl reaches the services there too
    (it was told to unset them, and so reached the default ports)."""
    keys = (f"SANAD_{service}_TARGET" for service in ("REGISTRY", "INTAKE", "METRICS"))
    return {key: env[key] for key in keys if env.get(key)}


def _protect(plan: Plan, env: dict[str, str], moved: dict[str, str]) -> None:
    """Secure mode (the default) or plaintext, and the sanadctl settings that fit it (with the
    targets of services moved to other ports, and the broker for `batch submit` and `seed`)."""
    client: dict[str, str] = dict(moved)
    client["SANAD_AMQP_URL"] = env.get("SANAD_AMQP_URL", DEFAULT_AMQP_URL)
    client["SANAD_AMQP_PREFIX"] = env.get("SANAD_AMQP_PREFIX", DEFAULT_AMQP_PREFIX)
    client[WORKER_TARGETS] = worker_health_targets(env, plan.workers)
    if secure.plaintext(env):
        print("devstack: plaintext gRPC, no credentials required (dev profile)", flush=True)
    else:
        folder = certs.certs_folder(env)
        env.update(secure.prepare(folder, env.get("SANAD_AMQP_URL", DEFAULT_AMQP_URL)))
        client |= secure.admin_client_env(folder)
        print(
            "devstack: mutual TLS, credentials required; sanadctl acts as admin after\n"
            f"  source {plan.data_dir / 'sanadctl.env'}\n"
            f"  (other identities: SANAD_TOKEN=$(cat {folder}/tokens/operator.jwt) sanadctl ...)",
            flush=True,
        )
    plan.data_dir.mkdir(parents=True, exist_ok=True)
    secure.write_client_env(plan.data_dir / "sanadctl.env", client)


def _supervise(children: list[Child], database: subprocess.Popen[bytes] | None) -> int:
    """Until Ctrl-C or SIGTERM (0), or until a child or the database exits (1)."""
    stopping = {"now": False}

    def request_stop(signum: int, frame: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print("devstack: running; press Ctrl-C to stop", flush=True)
    watched = [(child.name, child.process) for child in children]
    if database is not None:
        watched.append(("the MongoDB-wire server", database))
    while not stopping["now"]:
        for name, process in watched:
            if process.poll() is not None:
                print(
                    f"devstack: {name} exited with code {process.returncode}; stopping everything",
                    flush=True,
                )
                return 1
        time.sleep(0.2)
    print("devstack: stopping", flush=True)
    return 0


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # before the stack's own handlers: what started dies with us
        sys.exit("devstack: interrupted while starting")
