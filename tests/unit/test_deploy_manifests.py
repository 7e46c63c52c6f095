"""deploy/ manifests: they parse, core resources pass the Kubernetes schemas, custom resources
carry their operators' required fields, pods are locked down, and every reference resolves."""

import base64
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from test_deploy_kustomize import (
    K8S,
    OVERLAYS,
    ROOT,
    Resource,
    all_containers,
    find,
    load_documents,
    of_kind,
    render,
    selects,
)

from sanad.rpc.health import LIVENESS

# The oldest Kubernetes minor we support (native grpc probes, autoscaling/v2 and policy/v1 are
# all GA there); the schemas ship with kubernetes-validate, so this runs offline.
KUBERNETES_VERSION = "1.32.0"
DEPLOY_README = (ROOT / "deploy" / "README.md").read_text()
RENDERED = {overlay: render(K8S / "overlays" / overlay) for overlay in OVERLAYS}

# Custom resources: the fields their operators refuse to work without.
REQUIRED_FIELDS: dict[str, tuple[str, list[str]]] = {
    "RabbitmqCluster": ("rabbitmq.com/v1beta1", ["spec.replicas"]),
    "Vhost": ("rabbitmq.com/v1beta1", ["spec.name", "spec.rabbitmqClusterReference.name"]),
    "User": (
        "rabbitmq.com/v1beta1",
        ["spec.importCredentialsSecret.name", "spec.rabbitmqClusterReference.name"],
    ),
    "Permission": (
        "rabbitmq.com/v1beta1",
        [
            "spec.vhost",
            "spec.userReference.name",
            "spec.permissions.configure",
            "spec.permissions.write",
            "spec.permissions.read",
            "spec.rabbitmqClusterReference.name",
        ],
    ),
    "Policy": (
        "rabbitmq.com/v1beta1",
        [
            "spec.name",
            "spec.vhost",
            "spec.pattern",
            "spec.definition",
            "spec.rabbitmqClusterReference.name",
        ],
    ),
    "MongoDBCommunity": (
        "mongodbcommunity.mongodb.com/v1",
        ["spec.members", "spec.type", "spec.version", "spec.security.authentication.modes"],
    ),
    "PodMonitor": ("monitoring.coreos.com/v1", ["spec.selector", "spec.podMetricsEndpoints"]),
    "ScaledObject": ("keda.sh/v1alpha1", ["spec.scaleTargetRef.name", "spec.triggers"]),
    "TriggerAuthentication": ("keda.sh/v1alpha1", ["spec.secretTargetRef"]),
}


def field(resource: Resource, dotted: str) -> Any:
    """The value at a dotted path, or None."""
    value: Any = resource
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def custom_resources() -> list[tuple[str, Resource]]:
    """(overlay, resource) for every custom resource of every overlay."""
    return [
        (overlay, r)
        for overlay, resources in RENDERED.items()
        for r in resources
        if r["kind"] in REQUIRED_FIELDS
    ]


def test_every_yaml_file_under_deploy_parses() -> None:
    files = [*ROOT.glob("deploy/**/*.yaml"), *ROOT.glob("deploy/**/*.yml")]

    assert len(files) > 20
    for path in files:
        assert load_documents(path), f"{path} is empty"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_resources_pass_the_strict_kubernetes_schemas(overlay: str) -> None:
    checked = 0
    for resource in RENDERED[overlay]:
        if resource["kind"] in REQUIRED_FIELDS:
            continue
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked > 20


def test_strict_validation_refuses_an_unknown_field() -> None:
    deployment = find(RENDERED["dev"], "Deployment", "intake")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(("overlay", "resource"), custom_resources())
def test_custom_resources_carry_their_required_fields(overlay: str, resource: Resource) -> None:
    api_version, required = REQUIRED_FIELDS[resource["kind"]]

    assert resource["apiVersion"] == api_version
    for dotted in required:
        assert field(resource, dotted) not in (None, "", []), f"{overlay}: {dotted}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_as_non_root_with_a_read_only_root_filesystem(overlay: str) -> None:
    for deployment in of_kind(RENDERED[overlay], "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_dev_probes_are_native_grpc_and_prod_probes_speak_tls() -> None:
    for container in all_containers(RENDERED["dev"]):
        grpc_port = container["ports"][0]["containerPort"]
        assert container["readinessProbe"]["grpc"] == {"port": grpc_port}
        for probe in ("startupProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": grpc_port, "service": LIVENESS}
    for container in all_containers(RENDERED["prod"]):
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            command = container[probe]["exec"]["command"]
            assert "grpc" not in container[probe]
            assert command[:3] == ["python", "-m", "sanad.probe"]
            assert "--tls-cert" in command
            assert _asked(command) == ("" if probe == "readinessProbe" else LIVENESS)


def _asked(command: list[str]) -> str:
    """The health service name a sanad.probe command asks about ('' for the overall one)."""
    return command[command.index("--service") + 1] if "--service" in command else ""


def test_no_probe_that_restarts_a_pod_waits_for_mongodb_or_rabbitmq() -> None:
    """Liveness and startup ask the `liveness` health name (SERVING while the process answers);
    only readiness asks the overall status, which follows the dependencies."""
    for overlay in ("dev", "prod"):
        for container in all_containers(RENDERED[overlay]):
            for probe in ("startupProbe", "livenessProbe"):
                spec = container[probe]
                asked = spec["grpc"].get("service") if "grpc" in spec else None
                if "exec" in spec:
                    command = spec["exec"]["command"]
                    asked = (
                        command[command.index("--service") + 1] if "--service" in command else ""
                    )
                assert asked == LIVENESS, (overlay, container["name"], probe)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployable_has_an_account_a_service_and_a_disruption_budget(overlay: str) -> None:
    resources = RENDERED[overlay]
    for deployment in of_kind(resources, "Deployment"):
        name = deployment["metadata"]["name"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        find(resources, "ServiceAccount", account)
        assert find(resources, "Service", name)["spec"]["selector"].items() <= labels.items()
        budget = find(resources, "PodDisruptionBudget", name)
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("cluster", ["sanad-mongodb", "sanad-rabbitmq"])
def test_a_node_drain_takes_one_database_or_broker_member_at_a_time(
    overlay: str, cluster: str
) -> None:
    # Two of three members away leave MongoDB without a primary, quorum queues without leaders.
    resources = RENDERED[overlay]
    budget = find(resources, "PodDisruptionBudget", cluster)
    assert budget["spec"]["maxUnavailable"] == 1
    # The pods the operator makes carry the labels the cluster's NetworkPolicy selects.
    selected = find(resources, "NetworkPolicy", cluster)["spec"]["podSelector"]["matchLabels"]
    assert budget["spec"]["selector"]["matchLabels"] == selected


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_scale_by_hpa_and_talk_through_headless_services(overlay: str) -> None:
    resources = RENDERED[overlay]
    for name in ("registry", "intake", "metrics"):
        hpa = find(resources, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert find(resources, "Service", f"{name}-headless")["spec"]["clusterIP"] == "None"


def test_prod_scales_workers_on_queue_depth_with_keda() -> None:
    resources = RENDERED["prod"]
    for name, queue in (("ingest", "sanad.ingest"), ("batch", "sanad.batch")):
        scaled = find(resources, "ScaledObject", name)
        find(resources, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
        [trigger] = scaled["spec"]["triggers"]
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["queueName"] == queue
        auth = find(resources, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        assert auth["spec"]["secretTargetRef"][0]["name"] == "sanad-keda-amqp"
    # It reads the depth as a broker user that may do nothing else: a passive declare needs no
    # permission, and batches carry clear civil numbers.
    assert find(resources, "User", "keda")["spec"]["importCredentialsSecret"] == {
        "name": "sanad-keda-amqp"
    }
    permission = find(resources, "Permission", "keda-sanad")["spec"]
    assert permission["userReference"] == {"name": "keda"}
    assert permission["permissions"] == {"configure": "^$", "write": "^$", "read": "^$"}
    assert not [
        h
        for h in of_kind(resources, "HorizontalPodAutoscaler")
        if h["metadata"]["name"] in ("ingest", "batch")
    ]


def test_prod_runs_more_replicas_than_dev() -> None:
    for name in ("registry", "intake", "metrics"):
        dev = find(RENDERED["dev"], "HorizontalPodAutoscaler", name)["spec"]["minReplicas"]
        prod = find(RENDERED["prod"], "HorizontalPodAutoscaler", name)["spec"]["minReplicas"]
        assert prod > dev
    assert find(RENDERED["prod"], "RabbitmqCluster", "sanad-rabbitmq")["spec"]["replicas"] == 3
    assert find(RENDERED["prod"], "MongoDBCommunity", "sanad-mongodb")["spec"]["members"] == 3


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rabbitmq_topology_refers_to_existing_cluster_and_users(overlay: str) -> None:
    resources = RENDERED[overlay]
    cluster = find(resources, "RabbitmqCluster", "sanad-rabbitmq")["metadata"]["name"]
    users = {u["metadata"]["name"] for u in of_kind(resources, "User")}
    for kind in ("Vhost", "User", "Permission", "Policy"):
        for resource in of_kind(resources, kind):
            assert resource["spec"]["rabbitmqClusterReference"]["name"] == cluster
    for permission in of_kind(resources, "Permission"):
        assert permission["spec"]["userReference"]["name"] in users


def secret_references(resources: list[Resource]) -> dict[str, set[str]]:
    """Secret name -> the keys read from it (empty when the whole Secret is used)."""
    refs: dict[str, set[str]] = {}
    for container in all_containers(resources):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.setdefault(ref["name"], set()).add(ref["key"])
    config = {k: v for m in of_kind(resources, "ConfigMap") for k, v in m["data"].items()}
    for deployment in of_kind(resources, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                mounts = [
                    m["mountPath"]
                    for c in pod["containers"]
                    for m in c["volumeMounts"]
                    if m["name"] == volume["name"]
                ]
                files = {
                    Path(value).name
                    for value in config.values()
                    for mount in mounts
                    if value.startswith(f"{mount}/")
                }
                refs.setdefault(volume["secret"]["secretName"], set()).update(files)
    for user in of_kind(resources, "User"):
        refs.setdefault(user["spec"]["importCredentialsSecret"]["name"], set()).update(
            {"username", "password"}
        )
    for mongo in of_kind(resources, "MongoDBCommunity"):
        for user in mongo["spec"]["users"]:
            refs.setdefault(user["passwordSecretRef"]["name"], set()).add("password")
    for auth in of_kind(resources, "TriggerAuthentication"):
        for target in auth["spec"]["secretTargetRef"]:
            refs.setdefault(target["name"], set()).add(target["key"])
    for name, keys in backend_tls_references(resources):
        refs.setdefault(name, set()).update(keys)
    return refs


def backend_tls_references(resources: list[Resource]) -> list[tuple[str, set[str]]]:
    """The Secrets (and their keys) RabbitMQ, MongoDB and Prometheus read for TLS."""
    refs = []
    for broker in of_kind(resources, "RabbitmqCluster"):
        tls = broker["spec"].get("tls", {})
        if "secretName" in tls:
            refs.append((tls["secretName"], {"tls.crt", "tls.key"}))
        if "caSecretName" in tls:
            refs.append((tls["caSecretName"], {"ca.crt"}))
    for mongo in of_kind(resources, "MongoDBCommunity"):
        served = mongo["spec"]["security"].get("tls", {}).get("certificateKeySecretRef")
        if served:
            refs.append((served["name"], {"tls.crt", "tls.key"}))
    for monitor in of_kind(resources, "PodMonitor"):
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            ca = endpoint.get("tlsConfig", {}).get("ca", {}).get("secret")
            if ca:
                refs.append((ca["name"], {ca["key"]}))
    return refs


def operator_made_secrets(resources: list[Resource]) -> set[str]:
    """Secrets the MongoDB operator writes: one connection string per user."""
    return {
        f"{mongo['metadata']['name']}-{user['db']}-{user['name']}"
        for mongo in of_kind(resources, "MongoDBCommunity")
        for user in mongo["spec"]["users"]
    }


def test_dev_overlay_needs_no_secret_made_by_hand() -> None:
    resources = RENDERED["dev"]
    generated = {s["metadata"]["name"]: s for s in of_kind(resources, "Secret")}
    made = operator_made_secrets(resources)
    for name, keys in secret_references(resources).items():
        assert name in generated or name in made, f"dev overlay: Secret {name} comes from nowhere"
        if name in generated:
            assert keys <= set(generated[name]["data"]), f"{name} lacks {keys}"


def test_prod_secrets_are_each_created_by_a_documented_command() -> None:
    resources = RENDERED["prod"]
    made = operator_made_secrets(resources)
    commands = " ".join(re.findall(CREATE_SECRET, DEPLOY_README))
    for name, keys in secret_references(resources).items():
        if name in made:
            continue
        assert re.search(rf"\b{re.escape(name)}\b", commands) or _templated(name, commands), name
        for key in keys:
            assert f"{key}=" in commands, f"{name}: key {key} is never set in deploy/README.md"


def test_prod_config_maps_made_by_hand_are_each_created_by_a_documented_command() -> None:
    resources = RENDERED["prod"]
    generated = {m["metadata"]["name"] for m in of_kind(resources, "ConfigMap")}
    referenced = {
        mongo["spec"]["security"]["tls"]["caConfigMapRef"]["name"]
        for mongo in of_kind(resources, "MongoDBCommunity")
    }
    assert referenced, "the prod MongoDB verifies its members with a CA ConfigMap"
    for name in referenced - generated:
        assert f"create configmap {name} --from-file=ca.crt=" in DEPLOY_README, name


def test_prod_brokers_and_databases_serve_tls_only() -> None:
    resources = RENDERED["prod"]
    broker = find(resources, "RabbitmqCluster", "sanad-rabbitmq")["spec"]["tls"]
    assert broker["disableNonTLSListeners"] is True
    mongo = find(resources, "MongoDBCommunity", "sanad-mongodb")["spec"]["security"]["tls"]
    assert mongo["enabled"] is True
    assert not mongo.get("optional", False)
    # With only TLS listeners the Prometheus plugin answers https, and is verified.
    (scrape,) = find(resources, "PodMonitor", "sanad-rabbitmq")["spec"]["podMetricsEndpoints"]
    assert (scrape["port"], scrape["scheme"]) == ("prometheus-tls", "https")
    assert scrape["tlsConfig"]["ca"]["secret"]["name"] == broker["caSecretName"]
    for auth in of_kind(resources, "TriggerAuthentication"):
        parameters = {t["parameter"] for t in auth["spec"]["secretTargetRef"]}
        assert {"host", "tls", "ca"} <= parameters, auth["metadata"]["name"]
    assert "--from-literal=tls=enable" in DEPLOY_README  # KEDA's switch for its amqps dial


# One `kubectl ... create secret` command with its continuation lines.
CREATE_SECRET = r"kubectl (?:-n \S+ )?create secret[^\n]*(?:\\\n[^\n]*)*"


def _templated(name: str, commands: str) -> bool:
    """True when a loop in the README creates it, e.g. sanad-${name}-tls."""
    for template in re.findall(r"sanad-[\w-]*\$\{?\w+\}?[\w-]*", commands):
        regex = re.sub(r"\\\$\\\{?\w+\\\}?", r"[\\w-]+", re.escape(template))
        if re.fullmatch(regex, name):
            return True
    return False


def test_dev_amqp_urls_carry_the_users_own_password() -> None:
    resources = RENDERED["dev"]
    for user in of_kind(resources, "User"):
        secret = find(resources, "Secret", user["spec"]["importCredentialsSecret"]["name"])
        data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert data["url"].startswith(f"amqp://{data['username']}:{data['password']}@")
        assert data["url"].endswith("/sanad")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_select_pods_that_exist(overlay: str) -> None:
    resources = RENDERED[overlay]
    pod_labels = [
        d["spec"]["template"]["metadata"]["labels"] for d in of_kind(resources, "Deployment")
    ]
    operator_pods = [{"app.kubernetes.io/name": "sanad-rabbitmq"}, {"app": "sanad-mongodb-svc"}]
    for policy in of_kind(resources, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        matched = [labels for labels in [*pod_labels, *operator_pods] if selects(selector, labels)]
        assert matched, policy["metadata"]["name"]


def test_every_deployable_is_denied_by_default() -> None:
    resources = RENDERED["prod"]
    deny = find(resources, "NetworkPolicy", "sanad-default-deny")
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"]
    assert "egress" not in deny["spec"]
    for deployment in of_kind(resources, "Deployment"):
        assert selects(
            deny["spec"]["podSelector"], deployment["spec"]["template"]["metadata"]["labels"]
        )


def test_pod_monitors_scrape_a_named_metrics_port() -> None:
    resources = RENDERED["prod"]
    monitor = find(resources, "PodMonitor", "sanad-mesh")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    for container in all_containers(resources):
        assert "metrics" in {p["name"] for p in container["ports"]}


def test_dockerfile_builds_one_non_root_image_without_the_dev_extra() -> None:
    text = (ROOT / "Dockerfile").read_text()
    dockerfile = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    runtime = dockerfile.split(" AS runtime", 1)[1]

    assert "grpc_tools.protoc" in dockerfile
    assert "pip wheel" in dockerfile
    assert "[dev]" not in dockerfile
    assert "SecantusDB" not in dockerfile
    assert re.search(r"^USER 10001:10001$", runtime, re.MULTILINE)
    assert "COPY --from=builder /opt/sanad /opt/sanad" in runtime


def test_dockerignore_keeps_local_state_out_of_the_build() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()

    assert "*" in lines
    assert {"!protos/", "!sanad/", "!services/", "!workers/", "!pyproject.toml"} <= set(lines)
