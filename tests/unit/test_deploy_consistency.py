"""Compose and Kubernetes agree with the code: every variable they set is a real setting, every
port and probe matches the settings, both run the same image and commands, and the RabbitMQ users,
MongoDB users and Prometheus jobs line up across the two."""

import base64
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from test_deploy_kustomize import (
    K8S,
    OVERLAYS,
    ROOT,
    Resource,
    find,
    load_documents,
    of_kind,
    render,
    selects,
)

from sanad.settings import CommonSettings, amqp_user
from services.intake.settings import IntakeSettings
from services.metrics.settings import MetricsSettings
from services.registry.settings import RegistrySettings
from workers.batch.settings import BatchSettings
from workers.ingest.settings import IngestSettings

COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
DEFINITIONS = json.loads((COMPOSE_DIR / "rabbitmq" / "definitions.json").read_text())
RENDERED = {overlay: render(K8S / "overlays" / overlay) for overlay in OVERLAYS}
DEPLOY_README = (ROOT / "deploy" / "README.md").read_text()

# Each deployable: its settings class, the module it runs, and the fields naming its two ports.
DEPLOYABLES: dict[str, tuple[type[CommonSettings], str, str, str]] = {
    "registry": (RegistrySettings, "services.registry", "registry_port", "registry_metrics_port"),
    "intake": (IntakeSettings, "services.intake", "intake_port", "intake_metrics_port"),
    "metrics": (MetricsSettings, "services.metrics", "metrics_port", "metrics_metrics_port"),
    "ingest": (IngestSettings, "workers.ingest", "ingest_health_port", "ingest_metrics_port"),
    "batch": (BatchSettings, "workers.batch", "batch_health_port", "batch_metrics_port"),
}
IMAGE = "sanad-mesh"
# The deployables that follow the registry's watch streams: their settings name its address.
REGISTRY_CLIENTS = sorted(
    n for n, d in DEPLOYABLES.items() if "registry_target" in d[0].model_fields
)


def setting_name(variable: str) -> str:
    """SANAD_INTAKE_PORT -> intake_port; anything without the prefix is not a setting."""
    assert variable.startswith("SANAD_"), f"{variable} is not a SANAD_ setting"
    return variable.removeprefix("SANAD_").lower()


def assert_real_settings(variables: set[str], settings: type[CommonSettings], where: str) -> None:
    unknown = {v for v in variables if setting_name(v) not in settings.model_fields}
    assert not unknown, f"{where}: not fields of {settings.__name__}: {sorted(unknown)}"


def port_setting(settings: type[CommonSettings], env: dict[str, str], field_name: str) -> int:
    """The port a process binds: the variable set for it, else the settings default."""
    value = env.get(f"SANAD_{field_name.upper()}")
    default = settings.model_fields[field_name].default
    return int(value) if value is not None else int(default)


# --- Kubernetes -------------------------------------------------------------------------------


def k8s_env(resources: list[Resource], name: str) -> dict[str, str]:
    """Every variable a Deployment's container sees, with Secret values replaced by samples."""
    container = find(resources, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(find(resources, "ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            env[variable["name"]] = secret_value(resources, ref["name"], ref["key"])
    return env


def secret_value(resources: list[Resource], name: str, key: str) -> str:
    """A generated Secret's value, or a realistic one for Secrets made outside the overlay: the
    AMQP URL and user name as deploy/README.md creates them, the connection string as the
    MongoDB operator writes it (`ssl=true` exactly when the resource turns TLS on)."""
    generated = [s for s in of_kind(resources, "Secret") if s["metadata"]["name"] == name]
    if generated:
        return base64.b64decode(generated[0]["data"][key]).decode()
    mongo = find(resources, "MongoDBCommunity", "sanad-mongodb")
    tls = mongo["spec"]["security"].get("tls", {}).get("enabled", False)
    user = name.removeprefix("sanad-").removesuffix("-amqp")  # as deploy/README.md names it
    samples = {
        "url": documented_amqp_url(user, "secret"),
        "connectionString.standard": (
            "mongodb://user:secret@sanad-mongodb-0.sanad-mongodb-svc.sanad.svc.cluster.local:27017"
            f"/admin?replicaSet=sanad-mongodb&ssl={str(tls).lower()}"
        ),
        "secret": documented_civil_id_secret(),
        "username": user,
    }
    return samples[key]


def documented_civil_id_secret() -> str:
    """A civil-ID secret as long as the one deploy/README.md has `openssl rand -hex N` make."""
    (length,) = re.findall(
        r'sanad-civil-id --from-literal=secret="\$\(openssl rand -hex (\d+)\)"', DEPLOY_README
    )
    return "5a" * int(length)


def documented_amqp_url(user: str, password: str) -> str:
    """The URL deploy/README.md stores in each production sanad-<user>-amqp Secret."""
    (template,) = re.findall(r'--from-literal=url="([^"]+)"', DEPLOY_README)
    return template.replace("${user}", user).replace("${password}", password)


def k8s_container(resources: list[Resource], name: str) -> dict[str, Any]:
    return find(resources, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", DEPLOYABLES)
def test_k8s_sets_only_real_settings(overlay: str, name: str) -> None:
    settings = DEPLOYABLES[name][0]

    assert_real_settings(set(k8s_env(RENDERED[overlay], name)), settings, f"k8s {overlay} {name}")


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", DEPLOYABLES)
def test_k8s_settings_load_as_the_process_will_load_them(
    overlay: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = DEPLOYABLES[name][0]
    for variable in [v for v in os.environ if v.startswith("SANAD_")]:
        monkeypatch.delenv(variable)
    for variable, value in k8s_env(RENDERED[overlay], name).items():
        monkeypatch.setenv(variable, value)

    loaded = settings()

    assert loaded.profile.value == ("production" if overlay == "prod" else "dev")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_gives_the_civil_id_secret_only_to_the_deployables_that_hash_civil_numbers(
    overlay: str,
) -> None:
    # With the secret, any 8-digit civil number is found from its stored hash at once.
    given = {n for n in DEPLOYABLES if "SANAD_CIVIL_ID_SECRET" in k8s_env(RENDERED[overlay], n)}

    assert given == {n for n, d in DEPLOYABLES.items() if d[0].uses_civil_id_secret}
    assert given == {"intake", "batch"}


def test_compose_gives_the_civil_id_secret_only_to_the_deployables_that_hash_civil_numbers() -> (
    None
):
    given = {n for n in DEPLOYABLES if "SANAD_CIVIL_ID_SECRET" in compose_env(n)}

    assert given == {n for n, d in DEPLOYABLES.items() if d[0].uses_civil_id_secret}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingest_worker_stores_what_intakes_broker_user_publishes(overlay: str) -> None:
    # Any other name and every submission is dead-lettered not-allowed.
    intake_user = amqp_user(k8s_env(RENDERED[overlay], "intake")["SANAD_AMQP_URL"])
    publishers = k8s_env(RENDERED[overlay], "ingest")["SANAD_INGEST_PUBLISHERS"]
    assert publishers.split(",") == [intake_user]
    assert compose_env("ingest")["SANAD_INGEST_PUBLISHERS"] == amqp_user(
        compose_env("intake")["SANAD_AMQP_URL"]
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", DEPLOYABLES)
def test_k8s_ports_and_probes_match_the_settings(overlay: str, name: str) -> None:
    settings, _, grpc_field, metrics_field = DEPLOYABLES[name]
    resources = RENDERED[overlay]
    env = k8s_env(resources, name)
    container = k8s_container(resources, name)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    grpc_port = port_setting(settings, env, grpc_field)

    assert ports == {"grpc": grpc_port, "metrics": port_setting(settings, env, metrics_field)}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        spec = container[probe]
        if "grpc" in spec:
            assert spec["grpc"]["port"] == grpc_port
        else:
            assert f"127.0.0.1:{grpc_port}" in spec["exec"]["command"]
    service = find(resources, "Service", name)
    assert {p["port"] for p in service["spec"]["ports"]} == set(ports.values())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_registry_target_is_the_headless_service_in_this_namespace(overlay: str) -> None:
    resources = RENDERED[overlay]
    registry_port = k8s_container(resources, "registry")["ports"][0]["containerPort"]
    headless = find(resources, "Service", "registry-headless")
    expected = (
        f"dns:///registry-headless.{headless['metadata']['namespace']}.svc.cluster.local:"
        f"{registry_port}"
    )
    assert REGISTRY_CLIENTS == ["batch", "intake", "metrics"]
    for name in REGISTRY_CLIENTS:
        assert k8s_env(resources, name)["SANAD_REGISTRY_TARGET"] == expected


def test_k8s_registry_clients_expect_the_name_on_the_registrys_certificate() -> None:
    resources = RENDERED["prod"]
    probe = k8s_container(resources, "registry")["readinessProbe"]["exec"]["command"]
    certificate_name = probe[probe.index("--tls-server-name") + 1]
    for name in REGISTRY_CLIENTS:
        assert k8s_env(resources, name)["SANAD_TLS_SERVER_NAME"] == certificate_name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_network_policies_let_exactly_the_registry_clients_reach_it(overlay: str) -> None:
    resources = RENDERED[overlay]
    registry_port = k8s_container(resources, "registry")["ports"][0]["containerPort"]
    reaching = set()
    for policy in of_kind(resources, "NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            to_registry = any(
                peer.get("podSelector", {}).get("matchLabels")
                == {"app.kubernetes.io/name": "registry"}
                for peer in rule.get("to", [])
            )
            if to_registry and registry_port in {p["port"] for p in rule["ports"]}:
                reaching |= {
                    name
                    for name in DEPLOYABLES
                    if selects(policy["spec"]["podSelector"], {"app.kubernetes.io/name": name})
                }
    assert reaching == set(REGISTRY_CLIENTS)


@pytest.mark.parametrize("name", REGISTRY_CLIENTS)
def test_compose_registry_clients_call_every_registry_container_after_it_is_healthy(
    name: str,
) -> None:
    registry_port = port_setting(RegistrySettings, compose_env("registry"), "registry_port")
    assert compose_env(name)["SANAD_REGISTRY_TARGET"] == f"dns:///registry:{registry_port}"
    assert "registry" in COMPOSE["services"][name]["depends_on"]


def test_mongodb_users_match_the_deployables_and_the_database() -> None:
    resources = RENDERED["prod"]
    mongo = find(resources, "MongoDBCommunity", "sanad-mongodb")
    database = find(resources, "ConfigMap", "sanad-common")["data"]["SANAD_MONGO_DATABASE"]
    users = {u["name"]: u for u in mongo["spec"]["users"]}

    assert set(users) == set(DEPLOYABLES)
    for name, user in users.items():
        # Its own least-privilege role, on this database only (test_deploy_mongodb_roles.py).
        assert user["roles"] == [{"name": f"sanad-{name}", "db": "admin"}]
        [role] = [r for r in mongo["spec"]["security"]["roles"] if r["role"] == f"sanad-{name}"]
        assert {p["resource"]["db"] for p in role["privileges"]} == {database}
        container = k8s_container(resources, name)
        [mongo_url] = [e for e in container["env"] if e["name"] == "SANAD_MONGO_URL"]
        assert mongo_url["valueFrom"]["secretKeyRef"]["name"] == f"sanad-mongodb-admin-{name}"


# --- compose ----------------------------------------------------------------------------------


def compose_env(name: str) -> dict[str, str]:
    """A compose service's environment, with ${VAR:-default} resolved to its default."""
    raw = COMPOSE["services"][name]["environment"]
    return {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(v)) for k, v in raw.items()}


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_compose_sets_only_real_settings_and_they_load(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = DEPLOYABLES[name][0]
    env = compose_env(name)
    assert_real_settings(set(env), settings, f"compose {name}")
    for variable in [v for v in os.environ if v.startswith("SANAD_")]:
        monkeypatch.delenv(variable)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)

    settings()


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_compose_health_check_asks_the_port_the_process_binds(name: str) -> None:
    settings, _, grpc_field, _ = DEPLOYABLES[name]
    service = COMPOSE["services"][name]
    port = port_setting(settings, compose_env(name), grpc_field)

    assert service["healthcheck"]["test"] == [
        "CMD",
        "python",
        "-m",
        "sanad.probe",
        "--addr",
        f"127.0.0.1:{port}",
    ]


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_compose_and_k8s_run_the_same_image_and_command(name: str) -> None:
    module = DEPLOYABLES[name][1]
    command = ["python", "-m", module]
    compose_image = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", COMPOSE["services"][name]["image"])

    assert importlib.util.find_spec(module) is not None
    assert COMPOSE["services"][name]["command"] == command
    assert compose_image.split(":")[0] == IMAGE
    assert COMPOSE["services"][name]["read_only"] is True
    for overlay in OVERLAYS:
        container = k8s_container(RENDERED[overlay], name)
        assert container["command"] == command
        assert container["image"].split(":")[0] == IMAGE


def test_compose_and_k8s_deploy_the_same_processes() -> None:
    compose_apps = {n for n, s in COMPOSE["services"].items() if "command" in s and "build" in s}
    for overlay in OVERLAYS:
        assert {d["metadata"]["name"] for d in of_kind(RENDERED[overlay], "Deployment")} == set(
            DEPLOYABLES
        )
    assert compose_apps == set(DEPLOYABLES)


def test_compose_starts_each_process_after_its_dependencies_are_healthy() -> None:
    for name in DEPLOYABLES:
        depends = COMPOSE["services"][name]["depends_on"]
        assert "mongodb" in depends
        for dependency in depends.values():
            assert dependency == {"condition": "service_healthy"}
        for dependency in depends:
            assert "healthcheck" in COMPOSE["services"][dependency]


def test_compose_mongodb_is_a_replica_set_with_majority_writes() -> None:
    mongo = COMPOSE["services"]["mongodb"]
    assert "--replSet" in mongo["command"]
    assert "rs.initiate" in " ".join(mongo["healthcheck"]["test"])
    for name in DEPLOYABLES:
        url = compose_env(name)["SANAD_MONGO_URL"]
        assert "replicaSet=rs0" in url
        assert "w=majority" in url


# --- RabbitMQ users, the same in compose and Kubernetes -----------------------------------------


def rabbit_password_matches(password: str, password_hash: str) -> bool:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    raw = base64.b64decode(password_hash)
    salt, digest = raw[:4], raw[4:]
    return hashlib.sha256(salt + password.encode()).digest() == digest


@pytest.mark.parametrize("name", ["intake", "ingest", "batch"])
def test_compose_amqp_url_logs_in_as_a_defined_user_on_the_sanad_vhost(name: str) -> None:
    url = compose_env(name)["SANAD_AMQP_URL"]
    match = re.fullmatch(r"amqp://([^:]+):([^@]+)@rabbitmq:5672/(\w+)", url)
    assert match, url
    user, password, vhost = match.groups()
    [defined] = [u for u in DEFINITIONS["users"] if u["name"] == user]

    assert user == name
    assert vhost == "sanad"
    assert defined["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert rabbit_password_matches(password, defined["password_hash"])
    assert {p["vhost"] for p in DEFINITIONS["permissions"] if p["user"] == user} == {"sanad"}


def test_example_batch_submitter_may_only_publish_to_the_batch_exchange() -> None:
    [permission] = [p for p in DEFINITIONS["permissions"] if p["user"] == "batch-centre-example"]

    assert permission["write"] == r"^sanad\.batch$"
    assert not re.match(permission["read"], "sanad.ingest")
    assert not re.match(permission["configure"], "sanad.batch")


def test_k8s_rabbitmq_topology_matches_the_compose_definitions() -> None:
    resources = RENDERED["prod"]
    k8s_permissions = {
        p["spec"]["userReference"]["name"]: p["spec"]["permissions"]
        for p in of_kind(resources, "Permission")
        if p["spec"]["userReference"]["name"] != "keda"  # KEDA runs in Kubernetes only
    }
    compose_permissions = {
        p["user"]: {k: p[k] for k in ("configure", "write", "read")}
        for p in DEFINITIONS["permissions"]
        if p["user"] != "admin"
    }
    k8s_policies = {
        p["spec"]["name"]: (p["spec"]["pattern"], p["spec"]["applyTo"], p["spec"]["definition"])
        for p in of_kind(resources, "Policy")
    }
    compose_policies = {
        p["name"]: (p["pattern"], p["apply-to"], p["definition"]) for p in DEFINITIONS["policies"]
    }

    assert k8s_permissions == compose_permissions
    assert k8s_policies == compose_policies
    assert [v["spec"]["name"] for v in of_kind(resources, "Vhost")] == ["sanad"]
    assert [v["name"] for v in DEFINITIONS["vhosts"]] == ["sanad"]


def broker_setting(config: str, key: str) -> str:
    """A key's value in rabbitmq.conf text."""
    [value] = [
        line.split("=", 1)[1].strip()
        for line in config.splitlines()
        if line.split("=", 1)[0].strip() == key
    ]
    return value


def test_both_brokers_refuse_a_body_the_batch_worker_would_refuse_unread() -> None:
    limit = str(BatchSettings.model_fields["batch_max_bytes"].default)
    compose_conf = (COMPOSE_DIR / "rabbitmq" / "20-sanad.conf").read_text()
    for overlay in OVERLAYS:
        [cluster] = of_kind(RENDERED[overlay], "RabbitmqCluster")
        k8s_conf = cluster["spec"]["rabbitmq"]["additionalConfig"]
        assert broker_setting(k8s_conf, "max_message_size") == limit, overlay
    assert broker_setting(compose_conf, "max_message_size") == limit


# --- Prometheus -------------------------------------------------------------------------------


def compose_scrape_jobs() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_compose_prometheus_scrapes_every_replica_on_its_metrics_port() -> None:
    jobs = compose_scrape_jobs()

    assert set(jobs) == {*(f"sanad-{name}" for name in DEPLOYABLES), "rabbitmq"}
    for name, (settings, _, _, metrics_field) in DEPLOYABLES.items():
        [sd] = jobs[f"sanad-{name}"]["dns_sd_configs"]
        assert sd["names"] == [name]
        assert sd["port"] == port_setting(settings, compose_env(name), metrics_field)


def test_compose_prometheus_matches_the_project_scrape_config() -> None:
    [project] = load_documents(ROOT / "deploy" / "prometheus" / "prometheus.yml")
    project_jobs = {job["job_name"]: job for job in project["scrape_configs"]}
    jobs = compose_scrape_jobs()

    assert set(jobs) == set(project_jobs)
    for name, job in project_jobs.items():
        assert jobs[name].get("metrics_path") == job.get("metrics_path")
        [target] = job["static_configs"][0]["targets"]
        host, port = target.split(":")
        discovered = jobs[name].get("dns_sd_configs", [{"names": [host], "port": int(port)}])[0]
        if "static_configs" in jobs[name]:
            assert jobs[name]["static_configs"][0]["targets"] == [target]
        else:
            assert (discovered["names"], discovered["port"]) == ([host], int(port))


def test_k8s_pod_monitors_name_jobs_as_the_project_scrape_config_does() -> None:
    resources = RENDERED["prod"]
    [relabel] = find(resources, "PodMonitor", "sanad-mesh")["spec"]["podMetricsEndpoints"][0][
        "relabelings"
    ]
    rabbit = find(resources, "PodMonitor", "sanad-rabbitmq")["spec"]["podMetricsEndpoints"][0]

    assert relabel["targetLabel"] == "job"
    assert relabel["replacement"] == "sanad-$1"
    assert relabel["sourceLabels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_name"]
    assert rabbit["path"] == compose_scrape_jobs()["rabbitmq"]["metrics_path"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_compose_prometheus_config() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", "--syntax-only", str(COMPOSE_DIR / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_mounts_the_metrics_teams_prometheus_and_grafana_files() -> None:
    mounts = {
        service: [v.split(":")[0] for v in COMPOSE["services"][service]["volumes"]]
        for service in ("prometheus", "grafana")
    }

    assert "../prometheus/rules" in mounts["prometheus"]
    assert {"../grafana/provisioning", "../grafana/dashboards"} <= set(mounts["grafana"])
    [provider] = load_documents(ROOT / "deploy/grafana/provisioning/dashboards/sanad.yml")
    dashboards = [v for v in COMPOSE["services"]["grafana"]["volumes"] if "dashboards" in v]
    assert dashboards[0].split(":")[1] == provider["providers"][0]["options"]["path"]


def test_both_prometheus_configs_send_alerts_to_the_compose_alertmanager() -> None:
    alertmanager = COMPOSE["services"]["alertmanager"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in alertmanager["volumes"]}
    config = mounts["../alertmanager/alertmanager.yml"]
    assert f"--config.file={config}" in alertmanager["command"]
    assert "127.0.0.1:9093:9093" in alertmanager["ports"]
    for path in (COMPOSE_DIR / "prometheus.yml", ROOT / "deploy" / "prometheus" / "prometheus.yml"):
        [prometheus] = load_documents(path)
        [sender] = prometheus["alerting"]["alertmanagers"]
        assert sender["static_configs"] == [{"targets": ["alertmanager:9093"]}], path


def test_every_compose_file_mount_exists() -> None:
    for service in COMPOSE["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).exists(), source


@pytest.mark.parametrize("name", [n for n, d in DEPLOYABLES.items() if d[0].uses_amqp])
def test_the_ca_in_the_documented_amqps_url_is_mounted_where_it_says(name: str) -> None:
    cafile = PurePosixPath(parse_qs(urlsplit(documented_amqp_url("u", "p")).query)["cafile"][0])
    resources = RENDERED["prod"]
    container = k8s_container(resources, name)
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(cafile.parent)]
    pod = find(resources, "Deployment", name)["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    # The Secret mounted there is one deploy/README.md creates with this file in it.
    assert volume["secret"]["secretName"] in (f"sanad-{name}-tls", "sanad-workers-tls")
    assert cafile.name == "ca.crt"
