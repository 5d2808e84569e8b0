"""The Kubernetes manifests: every kustomization renders with `kubectl kustomize`, validates offline
against the Kubernetes schemas (kubernetes-validate, strict), and has what running Osprey needs."""

import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from conftest import ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"
KUSTOMIZATIONS = sorted(p.parent for p in KUBERNETES.rglob("kustomization.yaml"))
SHOP = ["gateway", "auth", "orders", "inventory", "payments", "database"]


def render(directory):
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed (scripts/test-all.sh installs it when missing)"
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def find(resources, kind, name):
    return next(r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name)


def test_both_kustomizations_exist():
    assert {p.relative_to(KUBERNETES).as_posix() for p in KUSTOMIZATIONS} == {
        "base", "overlays/demo", "overlays/object-storage"}


def test_object_storage_overlay_points_blocks_at_a_bucket_with_keys_from_a_secret():
    resources = render(KUBERNETES / "overlays" / "object-storage")
    config = find(resources, "ConfigMap", "osprey-config")["data"]
    assert config["OSPREY_STORAGE"].startswith("s3://") and config["OSPREY_DATA_DIR"] == "/var/lib/osprey"
    container = find(resources, "StatefulSet", "osprey")["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "osprey-object-storage"}} in container["envFrom"]
    assert {"configMapRef": {"name": "osprey-config"}} in container["envFrom"]
    secret = find(resources, "Secret", "osprey-object-storage")
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.relative_to(KUBERNETES).as_posix())
def test_renders_and_validates(directory):
    resources = render(directory)
    assert resources
    for resource in resources:
        kubernetes_validate.validate(resource, kubernetes_validate.latest_version(), strict=True)


def test_osprey_statefulset():
    resources = render(KUBERNETES / "base")
    osprey = find(resources, "StatefulSet", "osprey")
    assert osprey["metadata"]["namespace"] == "observability"
    pod = osprey["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "16686"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    [container] = pod["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert {p["containerPort"] for p in container["ports"]} == {4317, 4318, 16686, 3200, 5778, 9411, 14268, 6831, 6832, 16685}
    mount, tls_mount = container["volumeMounts"]
    config = find(resources, "ConfigMap", "osprey-config")
    assert config["data"]["OSPREY_DATA_DIR"] == mount["mountPath"]
    # TLS from the Secret osprey-tls, mounted where the settings point, probes over HTTPS.
    [tls_volume] = pod["spec"]["volumes"]
    assert tls_volume["secret"]["secretName"] == "osprey-tls" and tls_mount["name"] == tls_volume["name"]
    assert config["data"]["OSPREY_TLS_CERT"] == f"{tls_mount['mountPath']}/tls.crt"
    assert config["data"]["OSPREY_TLS_KEY"] == f"{tls_mount['mountPath']}/tls.key"
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert osprey["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == mount["name"]
    service = find(resources, "Service", "osprey")
    assert {p["port"] for p in service["spec"]["ports"]} == {4317, 4318, 16686, 3200, 5778, 9411, 14268, 6831, 6832, 16685}


def test_the_demo_overlay_runs_osprey_without_tls():
    resources = render(KUBERNETES / "overlays" / "demo")
    config = find(resources, "ConfigMap", "osprey-config")["data"]
    assert "OSPREY_TLS_CERT" not in config and "OSPREY_TLS_KEY" not in config
    [container] = find(resources, "StatefulSet", "osprey")["spec"]["template"]["spec"]["containers"]
    assert {container[p]["httpGet"]["scheme"] for p in ["startupProbe", "readinessProbe", "livenessProbe"]} == {"HTTP"}


def test_demo_overlay_deploys_every_service_exporting_to_osprey():
    resources = render(KUBERNETES / "overlays" / "demo")
    config = find(resources, "ConfigMap", "shop-config")["data"]
    assert config["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://osprey.observability.svc")
    for name in SHOP:
        deployment = find(resources, "Deployment", name)
        assert deployment["metadata"]["namespace"] == "shop"
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["serve", name]
        env = {e["name"]: e for e in container["env"]}
        assert env["OTEL_SERVICE_NAME"]["value"] == name
        assert env["K8S_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert env["K8S_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
        attributes = env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
        for key in ("k8s.namespace.name", "k8s.pod.name", "k8s.deployment.name=" + name, "k8s.node.name"):
            assert key in attributes
        assert container["envFrom"][0]["configMapRef"]["name"] == "shop-config"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        find(resources, "Service", name)
    payments = find(resources, "Deployment", "payments")["spec"]["template"]["spec"]["containers"][0]
    assert any(e["name"] == "DEMO_SLOW_DB_SHARE" for e in payments["env"])
    find(resources, "Deployment", "loadgen")
