"""deploy/: the manifests parse and validate against the Kubernetes schemas (kubernetes-validate,
strict: unknown fields are errors) for the oldest and newest Kubernetes versions podid supports,
and every `podid` argument they pass exists (the binary is run with each container's arguments
and `--help`)."""

import pathlib
import re
import subprocess

import kubernetes_validate
import pytest
import yaml

from conftest import ROOT, podid_bin

DEPLOY = ROOT / "deploy" / "kubernetes"
VERSIONS = ["1.33", "1.37"]
# Custom resources: no schema ships with kubernetes-validate (they are checked for shape below).
CUSTOM = {"cert-manager.io/v1": {"Issuer", "Certificate"}}


def documents():
    out = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                out.append((path.name, document))
    return out


def test_the_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    files = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(version):
    validated, custom = [], []
    for name, document in documents():
        kind, api = document.get("kind"), document.get("apiVersion")
        if kind in CUSTOM.get(api, set()):
            assert document["metadata"]["name"] and isinstance(document.get("spec"), dict), (name, kind)
            custom.append(f"{kind}/{document['metadata']['name']}")
            continue
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{name}: {kind}/{document['metadata']['name']} is invalid for Kubernetes {version}: {e.message} at {list(e.path)}")
        validated.append(f"{kind}/{document['metadata']['name']}")
    print(f"Kubernetes {version}: validated {len(validated)} objects; "
          f"custom resources checked for shape only (no schema): {', '.join(custom)}")
    assert {"DaemonSet/podid-agent", "Deployment/podid-server", "Deployment/podid-webhook",
            "MutatingWebhookConfiguration/podid-webhook"} <= set(validated)


def podid_containers():
    for name, document in documents():
        spec = document.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            if container.get("image", "").startswith("podid:"):
                yield f"{name}:{container['name']}", container["args"]


def test_every_podid_argument_in_the_manifests_exists():
    seen = 0
    for where, args in podid_containers():
        # Kubernetes expands $(VAR) from the container's environment.
        concrete = [re.sub(r"\$\((\w+)\)", "example", a) for a in args]
        help_text = subprocess.run([podid_bin(), concrete[0], "--help"], capture_output=True, text=True).stdout
        for arg in concrete[1:]:
            flag = arg.split("=", 1)[0]
            assert flag.startswith("--") and re.search(rf"{re.escape(flag)}\b", help_text), f"{where}: `{flag}` is not a flag of `podid {concrete[0]}`"
        # The whole command line parses (an unknown or malformed argument fails before --help).
        result = subprocess.run([podid_bin(), *concrete, "--help"], capture_output=True, text=True)
        assert result.returncode == 0, f"{where}: {result.stderr}"
        seen += 1
    assert seen == 4  # the server, the agent and its init container, the webhook


def test_the_image_builds_the_binary_the_manifests_run():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["/usr/local/bin/podid"]' in dockerfile and "iproute2" in dockerfile
    images = {c.get("image") for _, d in documents() for c in
              d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])}
    assert images == {"podid:0.1.0"}
