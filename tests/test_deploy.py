"""The Kubernetes deployment in deploy/, checked offline (no cluster, no Docker):

- every Kubernetes object passes kubernetes-validate's strict schemas (unknown fields are errors, as with
  `kubectl apply`'s default server-side field validation) for the oldest and newest Kubernetes we name;
- the RayCluster passes KubeRay's CRD schema (deploy/schemas/, vendored: no registry ships it), made strict
  the same way, and its pod templates pass the Kubernetes PodTemplate schema too;
- the pieces agree: one image everywhere, its Ray and Python are our pins, the router reaches the head's Ray
  Client port with the RayCluster's token Secret, every pod mounts the one ReadWriteMany claim at one path, the
  router's command parses with `simsearch serve`'s own parser, and every pod is hardened;
- deploy/Dockerfile parses, copies only files that exist and that its ignore file lets through, and copies all
  the wheel is built from.

Each validator is shown to reject a broken copy, so a pass means something. What runs only on a real cluster
(the operator, scheduling, the storage class, image pulls) is docs/deploy-kubernetes.md's to say."""

from __future__ import annotations

import copy
import importlib.util
import io
import re
import shlex
import sys
import tomllib
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
CRD = DEPLOY / "schemas" / "ray.io_rayclusters.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
# The oldest and the newest Kubernetes the doc names; kubernetes-validate bundles the schemas of both.
KUBE_VERSIONS = ("1.30.0", "1.37.0")


# --- loading ---------------------------------------------------------------------------------------------------

@cache
def _kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def objects() -> list[dict]:
    """Every object the kustomization applies, fresh copies (tests may break them)."""
    return [copy.deepcopy(d) for name in _kustomization()["resources"]
            for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def one(kind: str, objs: list[dict] | None = None) -> dict:
    (found,) = [o for o in (objs or objects()) if o["kind"] == kind]
    return found


def pod_specs(objs: list[dict]) -> dict[str, dict]:
    """Every pod template's spec: the router Deployment's, the Ray head's and each worker group's."""
    rc = one("RayCluster", objs)
    specs = {"router": one("Deployment", objs)["spec"]["template"]["spec"],
             "ray-head": rc["spec"]["headGroupSpec"]["template"]["spec"]}
    for group in rc["spec"]["workerGroupSpecs"]:
        specs[f"ray-worker/{group['groupName']}"] = group["template"]["spec"]
    return specs


def router_container(objs: list[dict]) -> dict:
    (c,) = one("Deployment", objs)["spec"]["template"]["spec"]["containers"]
    return c


def flag(command: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in command if a.startswith(name + "=")]
    return value


def pin(package: str) -> str:
    (line,) = [x for x in (ROOT / "constraints.txt").read_text().splitlines() if x.startswith(package + "==")]
    return line.split("==", 1)[1]


# --- validators ------------------------------------------------------------------------------------------------

def _strict(schema):
    """KubeRay's structural OpenAPI schema as JSON Schema, with unknown fields refused where Kubernetes refuses
    them: an object that lists its properties and neither declares additionalProperties nor preserves unknown
    fields. `nullable` becomes a null type. CEL rules (x-kubernetes-validations) are not evaluated here."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) if k in ("items", "additionalProperties", "not", "anyOf", "allOf", "oneOf") else v
           for k, v in schema.items()}
    if "properties" in schema:
        out["properties"] = {k: _strict(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if schema.get("nullable") and isinstance(schema.get("type"), str):
        out["type"] = [schema["type"], "null"]
    return out


@cache
def _raycluster_validator() -> jsonschema.Draft7Validator:
    (crd,) = [d for d in yaml.safe_load_all(CRD.read_text()) if d]
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _strict(v1["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def validate_raycluster(obj: dict) -> None:
    """Raises jsonschema.ValidationError, naming the path, if KubeRay's CRD would refuse `obj`."""
    assert obj["apiVersion"] == "ray.io/v1" and obj["kind"] == "RayCluster"
    error = jsonschema.exceptions.best_match(_raycluster_validator().iter_errors(obj))
    if error is not None:
        raise error


def validate_kubernetes(obj: dict, version: str) -> None:
    """Raises kubernetes_validate.ValidationError if Kubernetes `version` would refuse `obj`; for a RayCluster,
    checks each pod template as a core PodTemplate (the CRD embeds Kubernetes' PodTemplateSpec)."""
    if obj["kind"] != "RayCluster":
        kubernetes_validate.validate(obj, version, strict=True)
        return
    spec = obj["spec"]
    templates = [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]
    for i, template in enumerate(templates):
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"t{i}"},
                                      "template": template}, version, strict=True)


def dockerfile_problems(text: str, root: Path = ROOT) -> list[str]:
    """What is wrong with a Dockerfile meant to be built with `root` as its context: COPY sources (other than
    from another stage) that do not exist or that its ignore file keeps out, and a final USER that is missing,
    root, or not numeric (the kubelet can only check runAsNonRoot against a numeric one)."""
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    allowed = {line[1:].strip().rstrip("/") for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
               if line.startswith("!")}
    problems, user = [], None
    for step in parser.structure:
        if step["instruction"] == "FROM":
            user = None  # each stage starts from its base image's user
        elif step["instruction"] == "USER":
            user = step["value"].strip()
        elif step["instruction"] in ("COPY", "ADD"):
            words = shlex.split(step["value"])
            if any(w.startswith("--from") for w in words):
                continue
            for source in [w for w in words if not w.startswith("--")][:-1]:
                if not (root / source).exists():
                    problems.append(f"line {step['startline'] + 1}: {source} does not exist")
                elif source.rstrip("/") not in allowed:
                    problems.append(f"line {step['startline'] + 1}: {source} is not let through by the ignore file")
    if user is None or not re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user):
        problems.append(f"the final stage's USER is {user!r}, not a numeric non-root user")
    return problems


# --- the manifests are valid Kubernetes and KubeRay objects ----------------------------------------------------

@pytest.mark.unit
def test_the_kustomization_applies_every_manifest_and_names_one_image():
    listed = set(_kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    assert [i["name"] for i in _kustomization()["images"]] == ["simsearch"]


@pytest.mark.unit
@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_object_passes_the_strict_kubernetes_schemas(version):
    objs = objects()
    assert {o["kind"] for o in objs} == {"Namespace", "PersistentVolumeClaim", "RayCluster", "Deployment", "Service",
                                         "NetworkPolicy"}
    for obj in objs:
        validate_kubernetes(obj, version)


@pytest.mark.unit
def test_the_raycluster_passes_kuberays_crd_schema():
    validate_raycluster(one("RayCluster"))


def _break(mutate) -> list[dict]:
    objs = objects()
    mutate(objs)
    return objs


@pytest.mark.unit
@pytest.mark.parametrize("kind, mutate", [
    pytest.param("Deployment", lambda o: one("Deployment", o)["spec"].update(replica=1), id="misspelled field"),
    pytest.param("Deployment", lambda o: router_container(o)["ports"][0].update(containerPort="fifty"),
                 id="wrong type"),
    pytest.param("Deployment", lambda o: router_container(o)["readinessProbe"].update(periodSecond=10),
                 id="misspelled probe field"),
    pytest.param("Service", lambda o: one("Service", o)["spec"]["ports"][0].update(port="grpc"),
                 id="a name where a number goes"),
])
def test_the_kubernetes_validator_rejects_a_broken_copy(kind, mutate):
    objs = _break(mutate)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_kubernetes(one(kind, objs), KUBE_VERSIONS[-1])


@pytest.mark.unit
@pytest.mark.parametrize("mutate", [
    pytest.param(lambda rc: rc["spec"].update(workerGroupSpec=rc["spec"].pop("workerGroupSpecs")),
                 id="misspelled field"),
    pytest.param(lambda rc: rc["spec"]["workerGroupSpecs"][0].update(replicas="two"), id="wrong type"),
    pytest.param(lambda rc: rc["spec"]["authOptions"].update(mode="tokens"), id="not in the enum"),
    pytest.param(lambda rc: rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0].update(
        imagePullPolice="Always"), id="misspelled field inside the pod template"),
    pytest.param(lambda rc: rc["spec"].pop("headGroupSpec"), id="a required field missing"),
])
def test_the_crd_validator_rejects_a_broken_copy(mutate):
    rc = one("RayCluster")
    mutate(rc)
    with pytest.raises(jsonschema.ValidationError):
        validate_raycluster(rc)


@pytest.mark.unit
def test_a_broken_pod_template_in_the_raycluster_fails_the_kubernetes_schema_too():
    rc = one("RayCluster")
    rc["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]["limit"] = {"cpu": "1"}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_kubernetes(rc, KUBE_VERSIONS[-1])


# --- the pieces agree --------------------------------------------------------------------------------------------

@pytest.mark.unit
def test_one_image_everywhere_at_our_ray_and_python():
    objs = objects()
    images = {c["image"] for spec in pod_specs(objs).values() for c in spec["containers"]}
    assert images == {"simsearch:0.1.0"}  # kustomization `images` rewrites them all together
    ray = pin("ray")
    assert one("RayCluster", objs)["spec"]["rayVersion"] == ray
    parser = DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))
    python = "py" + "".join(map(str, sys.version_info[:2]))
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == f">={sys.version_info[0]}.{sys.version_info[1]},<{sys.version_info[0]}.{sys.version_info[1] + 1}"
    assert set(parser.parent_images) == {f"rayproject/ray:{ray}-{python}"}
    assert f"ray.__version__ == '{ray}'" in DOCKERFILE.read_text()  # the build itself checks what it installed


@pytest.mark.unit
def test_the_router_joins_the_head_with_the_clusters_token():
    objs = objects()
    rc, router = one("RayCluster", objs), router_container(objs)
    head = rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    (client_port,) = [p["containerPort"] for p in head["ports"] if p["name"] == "client"]
    assert flag(router["command"], "--ray-address") == f"ray://{rc['metadata']['name']}-head-svc:{client_port}"
    # One Secret: KubeRay puts it on the Ray containers (authOptions), the router reads it as a file.
    assert rc["spec"]["authOptions"] == {"mode": "token", "secretName": "simsearch-ray-token"}
    env = {e["name"]: e for e in router["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    token_file = Path(env["RAY_AUTH_TOKEN_PATH"]["value"])
    volume = _volume_at(pod_specs(objs)["router"], router, token_file)
    assert volume["secret"]["secretName"] == "simsearch-ray-token" and token_file.name == "auth_token"


def _volume_at(spec: dict, container: dict, path: Path) -> dict:
    """The pod volume that `container` mounts at or above `path`."""
    (mount,) = [m for m in container["volumeMounts"] if path.is_relative_to(m["mountPath"])]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    return volume


@pytest.mark.unit
def test_every_pod_mounts_the_one_shared_claim_at_the_same_path():
    objs = objects()
    pvc = one("PersistentVolumeClaim", objs)
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    router = router_container(objs)
    data_dir = Path(flag(router["command"], "--data-dir"))
    for name, spec in pod_specs(objs).items():
        (container,) = spec["containers"]
        volume = _volume_at(spec, container, data_dir)
        assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"], name


@pytest.mark.unit
def test_the_router_command_parses_and_keeps_secrets_off_it():
    from simsearch.cli import parser

    objs = objects()
    router = router_container(objs)
    spec = pod_specs(objs)["router"]
    assert router["command"][0] == "simsearch"
    args = parser().parse_args(router["command"][1:])  # exits (SystemExit) on an unknown flag or a bad value
    assert args.command == "serve" and args.host == "0.0.0.0"
    assert args.tls_cert and args.tls_key, "a non-loopback address serves TLS"
    assert args.bootstrap_key is None and args.bootstrap_key_file
    for path in (args.tls_cert, args.tls_key, args.bootstrap_key_file):
        assert "secret" in _volume_at(spec, router, Path(path)), path
    assert args.ray_address.startswith("ray://") and args.placement == "auto"  # auto + a cluster = shards in Ray
    ports = {p["name"]: p["containerPort"] for p in router["ports"]}
    assert ports == {"grpc": args.port, "metrics": args.metrics_port} and args.port != args.metrics_port
    assert all("value" not in e for e in router["env"] if re.search("TOKEN$|KEY$|PASSWORD", e["name"]))


@pytest.mark.unit
def test_the_router_is_one_replica_behind_a_cluster_ip_service_with_tls_probes():
    objs = objects()
    deployment, service = one("Deployment", objs), one("Service", objs)
    assert deployment["spec"]["replicas"] == 1  # one owner per data directory (router/dirlock.py)
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["type"] == "ClusterIP" and service["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["grpc"]  # metrics stay off the Service
    router = router_container(objs)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = router[probe]["exec"]["command"]
        assert command[:2] == ["python", "/opt/simsearch/grpc_health_check.py"], probe
        assert flag(command, "--address").endswith(f":{flag(router['command'], '--port')}")
        assert "secret" in _volume_at(pod_specs(objs)["router"], router, Path(flag(command, "--ca")))
    assert "COPY deploy/grpc_health_check.py /opt/simsearch/grpc_health_check.py" in DOCKERFILE.read_text()


@pytest.mark.unit
def test_every_pod_runs_hardened():
    for name, spec in pod_specs(objects()).items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec["containers"]:
            assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}, name
            assert "emptyDir" in _volume_at(spec, c, Path("/tmp/ray")), name  # the writable scratch space
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], name


# --- the Dockerfile ----------------------------------------------------------------------------------------------

@pytest.mark.unit
def test_the_dockerfile_copies_existing_allowed_files_and_ends_non_root():
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


@pytest.mark.unit
def test_the_dockerfile_check_catches_a_missing_file_a_blocked_file_and_a_root_user():
    text = DOCKERFILE.read_text()
    broken = text.replace("COPY --chown=1000:100 bench/ bench/", "COPY --chown=1000:100 benches/ bench/")
    line = text.splitlines().index("COPY --chown=1000:100 bench/ bench/") + 1
    assert dockerfile_problems(broken) == [f"line {line}: benches/ does not exist"]
    (blocked,) = dockerfile_problems(text + "COPY tests/ /tmp/tests/\n")
    assert blocked.endswith("tests/ is not let through by the ignore file")
    (root,) = dockerfile_problems(text + "USER root\n")
    assert root == "the final stage's USER is 'root', not a numeric non-root user"


@pytest.mark.unit
def test_the_wheel_stage_copies_everything_the_package_is_built_from():
    parser = DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))
    copied = set()
    for step in parser.structure:
        if step["instruction"] == "FROM" and copied:
            break  # the end of the first (wheel) stage
        if step["instruction"] == "COPY":
            copied |= {w.rstrip("/") for w in shlex.split(step["value"])[1:-1] if not w.startswith("--")}
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dirs = {d for d in setuptools["package-dir"].values() if d != "."}
    root_files = {p.name for p in ROOT.glob("*.py")} | {"py.typed", "pyproject.toml", "README.md"}
    assert package_dirs | root_files <= copied, (package_dirs | root_files) - copied


# --- the TLS health probe ----------------------------------------------------------------------------------------

def _probe_module():
    spec = importlib.util.spec_from_file_location("grpc_health_check", DEPLOY / "grpc_health_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.unit
def test_the_probe_fails_cleanly_without_its_ca(tmp_path, capsys):
    assert _probe_module().main(["--ca", str(tmp_path / "missing.pem")]) == 2
    assert "missing.pem" in capsys.readouterr().err


@pytest.mark.integration
def test_the_probe_passes_a_tls_router_that_a_plaintext_probe_cannot_reach(tmp_path):
    import grpc
    import trustme
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from conftest import API_KEY
    from simsearch.router import EmbeddedServer, ServeConfig

    ca = trustme.CA()
    cert = ca.issue_cert("simsearch-router", "localhost")
    for i, pem in enumerate(cert.cert_chain_pems):
        pem.write_to_path(str(tmp_path / "server.pem"), append=i > 0)
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    config = ServeConfig(port=0, data_dir=tmp_path / "data", bootstrap_key=API_KEY, tls_cert=tmp_path / "server.pem",
                         tls_key=tmp_path / "server.key")
    probe = _probe_module().main
    with EmbeddedServer(config) as server:
        port = server.address.rsplit(":", 1)[1]
        address, ca_file = f"127.0.0.1:{port}", str(tmp_path / "ca.pem")
        assert probe([f"--address={address}", f"--ca={ca_file}", "--server-name=simsearch-router"]) == 0
        assert probe([f"--address={address}", f"--ca={ca_file}", "--server-name=someone-else"]) == 1
        with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError):  # what a kubelet grpc probe does
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
