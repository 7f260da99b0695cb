"""Every manifest under deploy/k8s and deploy/examples against the Kubernetes API schemas, strictly
(an unknown or misspelled field is an error, as `kubectl apply --validate=strict` makes it), offline:
kubernetes-validate ships the schemas. No cluster here: this is what the API server would check first."""
from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
FILES = sorted(p for d in ("k8s", "examples") for p in (DEPLOY / d).iterdir() if p.suffix in (".yaml", ".yml"))
# The oldest Kubernetes docs/operations/deploying.md supports (the PDB's unhealthyPodEvictionPolicy is 1.27+),
# and the newest the package has schemas for.
VERSIONS = ("1.27.0", kubernetes_validate.latest_version())


def documents(path: Path) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert docs, f"{path} holds no manifest"
    return docs


def test_every_manifest_directory_has_manifests():
    names = {p.relative_to(DEPLOY).as_posix() for p in FILES}
    assert {"k8s/deployment.yaml", "k8s/service.yaml", "k8s/pdb.yaml", "examples/ingress.yaml"} <= names


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_manifest_is_valid_for_kubernetes(path: Path, version: str):
    for doc in documents(path):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            pytest.fail(f"{path.name}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}: {where}: {exc.message}")


def test_strict_validation_rejects_a_misspelled_field():
    """The check above is not vacuous: a typo kubectl's default validation would only warn about fails."""
    deployment = next(d for d in documents(DEPLOY / "k8s" / "deployment.yaml") if d["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbes"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessProbes"):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)
