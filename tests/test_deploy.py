"""The deployment files, checked without a cluster or a Docker engine: Kubernetes schemas,
every A3C_* variable against the CLI of the command its container runs, probes that parse,
the controllers' contract, a security scan, and the image's hardening."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import click
import kubernetes_validate
import pytest
import yaml

from a3c.cli import main as cli

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33"


def documents() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(kind: str) -> list[dict]:
    return [d for d in documents() if d["kind"] == kind]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def envvars(command: click.Command) -> set[str]:
    return {p.envvar for p in command.params if isinstance(p.envvar, str)}


def test_every_manifest_validates_against_the_kubernetes_schemas():
    docs = documents()
    kinds = {"Namespace", "ConfigMap", "PersistentVolumeClaim", "Service", "Job", "Deployment",
             "NetworkPolicy"}  # fmt: skip
    assert {d["kind"] for d in docs} >= kinds
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_lists_every_manifest_and_apply_f_skips_it():
    kustomization = yaml.safe_load((K8S / "Kustomization").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in K8S.glob("*.yaml"))
    assert not list(K8S.glob("kustomization.y*ml"))  # `kubectl apply -f DIR` would choke on it


def containers() -> list[tuple[str, dict, dict]]:
    """(subcommand, container, its pod spec) of every workload, in Kubernetes and compose."""
    found = []
    for workload in by_kind("Job") + by_kind("Deployment"):
        for c in pod_spec(workload)["containers"]:
            found.append((c["args"][0], c, pod_spec(workload)))
    return found


def test_every_a3c_variable_is_an_option_of_the_command_its_container_runs():
    settings = {d["metadata"]["name"]: d["data"] for d in by_kind("ConfigMap")}
    checked = 0
    for sub, container, _ in containers():
        names = {e["name"] for e in container.get("env", [])}
        for source in container.get("envFrom", []):
            names |= set(settings[source["configMapRef"]["name"]])
        unknown = {n for n in names if n.startswith("A3C_")} - envvars(cli.commands[sub])
        assert not unknown, f"a3c {sub} has no option for {sorted(unknown)}"
        checked += len(names)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in compose["services"].values():
        sub = service["command"][0]
        environment = service.get("environment", {})
        unknown = {n for n in environment if n.startswith("A3C_")}
        unknown -= envvars(cli.commands[sub])
        assert not unknown, f"compose: a3c {sub} has no option for {sorted(unknown)}"
        checked += len(environment)
    assert checked > 15


def test_probes_parse_with_the_cli_and_ask_the_learner_itself():
    (job,) = by_kind("Job")
    (container,) = pod_spec(job)["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        command = container[probe]["exec"]["command"]
        assert command[:2] == ["a3c", "status"]
        ctx = cli.commands["status"].make_context("status", command[2:])  # raises if it cannot
        assert ctx.params["address"].endswith(":5555") and ctx.params["timeout"] <= 5
        keys = ctx.params["keys_dir"]
        assert any(m["mountPath"] == keys for m in container["volumeMounts"])


def test_controllers_end_a_run_and_scale_actors():
    (job,) = by_kind("Job")
    (actors,) = by_kind("Deployment")
    assert pod_spec(job)["restartPolicy"] == "OnFailure"  # exit 0 at the end: no restart
    (actor,) = pod_spec(actors)["containers"]
    env = {e["name"]: e.get("value") for e in actor["env"]}
    assert env["A3C_AFTER_STOP"] == "wait"  # a finished run does not crash-loop actors
    (service,) = by_kind("Service")
    assert env["A3C_LEARNER"] == f"tcp://{service['metadata']['name']}:5555"
    assert all("hostPort" not in p for p in actor.get("ports", []))
    assert "hostNetwork" not in pod_spec(actors)


def test_the_learner_claim_is_mounted_where_the_run_dir_points():
    (job,) = by_kind("Job")
    (container,) = pod_spec(job)["containers"]
    settings = {k: v for d in by_kind("ConfigMap") for k, v in d["data"].items()}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["A3C_RESUME"] == "1"
    claims = {v["name"] for v in pod_spec(job)["volumes"] if "persistentVolumeClaim" in v}
    mounts = [m["mountPath"] for m in container["volumeMounts"] if m["name"] in claims]
    assert any(settings["A3C_RUN_DIR"].startswith(m + "/") for m in mounts)


def secrets_mounted(workload: dict) -> set[str]:
    spec = pod_spec(workload)
    mounted = {m["name"] for c in spec["containers"] for m in c.get("volumeMounts", [])}
    return {
        v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v and v["name"] in mounted
    }


def test_actor_pods_mount_no_secret_of_the_learner():
    (job,) = by_kind("Job")
    (actors,) = by_kind("Deployment")
    (actor,) = pod_spec(actors)["containers"]
    env = {e["name"]: e.get("value") for e in actor["env"]}
    # the learner's pair and the list of who may join stay with the learner
    learner_only = secrets_mounted(job) - secrets_mounted(actors)
    assert {"a3c-learner-key", "a3c-authorized"} <= learner_only
    assert secrets_mounted(actors) == {"a3c-actor-key"}
    assert any(m["mountPath"] == env["A3C_KEYS_DIR"] for m in actor["volumeMounts"])
    for volume in pod_spec(actors)["volumes"]:
        assert "secret" not in volume or volume["secret"]["defaultMode"] & 0o007 == 0


def test_pods_run_unprivileged():
    for _, container, spec in containers():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] and pod["runAsUser"] >= 10000
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"]
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert "limits" in container["resources"] and "requests" in container["resources"]


def checkov(*args: str) -> dict:
    exe = shutil.which("checkov", path=str(Path(sys.executable).parent))
    done = subprocess.run([exe, *args, "--skip-download", "--quiet", "-o", "json"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)  # fmt: skip
    out = json.loads(done.stdout)
    return out if isinstance(out, dict) else {"results": {}, "summary": out[0]["summary"]}


@pytest.mark.parametrize(
    "target",
    [("-d", "deploy/kubernetes", "--framework", "kubernetes"),
     ("-f", "Dockerfile", "--framework", "dockerfile"),
     ("-f", "docker-compose.yml", "-d", "deploy/kubernetes", "--framework", "secrets")],
    ids=["kubernetes", "dockerfile", "secrets"],
)  # fmt: skip
def test_security_scan_finds_nothing_and_every_skip_says_why(target):
    report = checkov(*target)
    results = report.get("results", {})
    failed = results.get("failed_checks", [])
    assert not failed, [(c["check_id"], c["resource"]) for c in failed]
    for skipped in results.get("skipped_checks", []):
        reason = (skipped.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason) > 20, f"{skipped['check_id']} skipped without a reason"


def test_the_image_is_non_root_configurable_and_small_in_context():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=" in dockerfile and "FROM ${BASE_IMAGE}" in dockerfile
    assert "ARG TORCH_INDEX=" in dockerfile and '"${TORCH_INDEX}"' in dockerfile
    user = [line for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert user and not user[-1].split()[1].startswith(("root", "0"))
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "runs", "keys", ".git"} <= set(ignored)
