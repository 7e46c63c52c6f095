"""A small kustomize renderer for deploy/k8s, and tests that every overlay renders.

No kustomize binary runs here, so this renders the subset of kustomize that deploy/k8s uses:
resources (files and directories), components, strategic-merge patches matched by kind and name,
`images`, `replicas`, `namespace`, and secret/configMap generators with literals (and
`disableNameSuffixHash`, so generated names stay predictable). Anything else in a
kustomization.yaml makes rendering fail, so the manifests cannot drift beyond what is checked.
"""

import base64
import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")

Resource = dict[str, Any]

SUPPORTED_FIELDS = {
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "components",
    "patches",
    "images",
    "replicas",
    "generatorOptions",
    "secretGenerator",
    "configMapGenerator",
}
# Lists that strategic merge patches merge by a key instead of replacing (core pod fields).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}
CLUSTER_SCOPED = {"Namespace"}


def load_documents(path: Path) -> list[Resource]:
    """Every non-empty YAML document in a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def strategic_merge(target: Any, patch: Any) -> Any:
    """Apply a strategic-merge patch: maps merge, None deletes, keyed lists merge by key."""
    if not isinstance(target, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif key in MERGE_KEYS and isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = _merge_list(merged[key], value, MERGE_KEYS[key])
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = strategic_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_list(items: list[Any], patches: list[Any], key: str) -> list[Any]:
    """Merge items by key; new items come first, in patch order, as kustomize places them."""
    result = list(items)
    added = []
    for patch in patches:
        index = next((i for i, item in enumerate(result) if item.get(key) == patch.get(key)), None)
        if index is None:
            added.append(copy.deepcopy(patch))
        else:
            result[index] = strategic_merge(result[index], patch)
    return added + result


def render(directory: Path) -> list[Resource]:
    """The resources `kustomize build directory` produces (for the subset described above)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED_FIELDS
    assert not unknown, f"{directory}: the test renderer does not support {unknown}"
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        resources += render(path) if path.is_dir() else load_documents(path)
    for entry in kustomization.get("components", []):
        component = (directory / entry).resolve()
        assert yaml.safe_load((component / "kustomization.yaml").read_text())["kind"] == "Component"
        resources += render(component)
    resources += _generated(kustomization)
    for entry in kustomization.get("patches", []):
        assert set(entry) == {"path"}, f"{directory}: only file patches are supported"
        for patch in load_documents(directory / entry["path"]):
            resources = _apply_patch(resources, patch, directory / entry["path"])
    for image in kustomization.get("images", []):
        _set_image(resources, image)
    for replicas in kustomization.get("replicas", []):
        find(resources, "Deployment", replicas["name"])["spec"]["replicas"] = replicas["count"]
    if "namespace" in kustomization:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    return resources


def _generated(kustomization: dict[str, Any]) -> list[Resource]:
    generators = [("Secret", g) for g in kustomization.get("secretGenerator", [])]
    generators += [("ConfigMap", g) for g in kustomization.get("configMapGenerator", [])]
    if generators:
        options = kustomization.get("generatorOptions", {})
        assert options.get("disableNameSuffixHash") is True, "generated names must be predictable"
    resources = []
    for kind, generator in generators:
        assert set(generator) <= {"name", "literals"}, f"unsupported generator {generator}"
        pairs = dict(literal.split("=", 1) for literal in generator.get("literals", []))
        if kind == "Secret":
            data = {k: base64.b64encode(v.encode()).decode() for k, v in pairs.items()}
            resources.append(_resource("v1", "Secret", generator["name"], type="Opaque", data=data))
        else:
            resources.append(_resource("v1", "ConfigMap", generator["name"], data=pairs))
    return resources


def _resource(api_version: str, kind: str, name: str, **body: Any) -> Resource:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, **body}


def _apply_patch(resources: list[Resource], patch: Resource, source: Path) -> list[Resource]:
    name = patch["metadata"]["name"]
    matches = [
        i
        for i, r in enumerate(resources)
        if r["kind"] == patch["kind"]
        and r["metadata"]["name"] == name
        and r["apiVersion"] == patch["apiVersion"]
    ]
    assert len(matches) == 1, f"{source}: patch matches {len(matches)} resources"
    patched = list(resources)
    patched[matches[0]] = strategic_merge(resources[matches[0]], patch)
    return patched


def _set_image(resources: list[Resource], image: dict[str, str]) -> None:
    for container in all_containers(resources):
        name = container["image"].split(":", 1)[0]
        if name == image["name"]:
            new_name = image.get("newName", name)
            container["image"] = f"{new_name}:{image['newTag']}" if "newTag" in image else new_name


def identity(resource: Resource) -> tuple[str, str]:
    """(kind, name): what makes a resource unique in one namespace."""
    return resource["kind"], resource["metadata"]["name"]


def find(resources: list[Resource], kind: str, name: str) -> Resource:
    """The one resource of that kind and name."""
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def of_kind(resources: list[Resource], kind: str) -> list[Resource]:
    """Every resource of a kind."""
    return [r for r in resources if r["kind"] == kind]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and `In` expressions) matches these labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def all_containers(resources: list[Resource]) -> list[dict[str, Any]]:
    """Every container of every Deployment."""
    return [
        c
        for d in of_kind(resources, "Deployment")
        for c in d["spec"]["template"]["spec"]["containers"]
    ]


# --- tests of the renderer itself ---------------------------------------------------------


def test_strategic_merge_merges_containers_and_env_by_name() -> None:
    target = {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}], "image": "i"}]}
    patch = {"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}]}

    merged = strategic_merge(target, patch)

    assert merged["containers"] == [
        {
            "name": "a",
            "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}],
            "image": "i",
        }
    ]


def test_strategic_merge_null_deletes_a_field() -> None:
    target = {"probe": {"grpc": {"port": 1}, "periodSeconds": 5}}

    merged = strategic_merge(target, {"probe": {"grpc": None, "exec": {"command": ["x"]}}})

    assert merged == {"probe": {"periodSeconds": 5, "exec": {"command": ["x"]}}}


def test_strategic_merge_replaces_unkeyed_lists() -> None:
    assert strategic_merge({"args": ["a", "b"]}, {"args": ["c"]}) == {"args": ["c"]}


# --- tests of the overlays ----------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_without_duplicate_resources(overlay: str) -> None:
    resources = render(K8S / "overlays" / overlay)

    keys = [(r["kind"], r["metadata"]["name"]) for r in resources]
    assert len(keys) == len(set(keys))
    assert {"Deployment", "Service", "ServiceAccount", "ConfigMap"} <= {
        r["kind"] for r in resources
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_puts_everything_in_one_namespace(overlay: str) -> None:
    resources = render(K8S / "overlays" / overlay)

    namespaces = {r["metadata"].get("namespace") for r in resources if r["kind"] != "Namespace"}
    assert namespaces == {"sanad"}
    assert [r["metadata"]["name"] for r in of_kind(resources, "Namespace")] == ["sanad"]


def kustomize_command() -> list[str] | None:
    """A real kustomize, where one is installed (CI machines have none; that is fine)."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@pytest.mark.skipif(kustomize_command() is None, reason="no kustomize or kubectl installed")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_real_kustomize_renders_the_same_resources(overlay: str) -> None:
    command = kustomize_command()
    assert command is not None
    result = subprocess.run(
        [*command, str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    theirs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    for secret in of_kind(theirs, "Secret"):
        # kustomize wraps long base64 lines; compare the decoded values.
        secret["data"] = {
            k: base64.b64encode(base64.b64decode(v)).decode() for k, v in secret["data"].items()
        }

    assert sorted(theirs, key=identity) == sorted(render(K8S / "overlays" / overlay), key=identity)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_gives_every_container_a_tagged_image(overlay: str) -> None:
    for container in all_containers(render(K8S / "overlays" / overlay)):
        assert ":" in container["image"], container["name"]
