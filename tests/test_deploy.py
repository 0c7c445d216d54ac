"""The deployment files, checked without a cluster or a Docker engine: Kubernetes schemas,
every A3C_* variable against the CLI of the command its container runs, probes that parse,
the controllers' contract, the relay layout (relays per node, actors through them, keys at
both hops, metrics), the paths the network policies open, a security scan, and the
image's hardening."""

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
# The base (`kubectl apply -f deploy/kubernetes/`) and the relay layout added to it.
FOLDERS = [K8S, K8S / "relay"]
KUBERNETES_VERSION = "1.33"


def documents(folders: list[Path] = FOLDERS) -> list[dict]:
    docs = []
    for folder in folders:
        for path in sorted(folder.glob("*.yaml")):
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(kind: str) -> list[dict]:
    return [d for d in documents() if d["kind"] == kind]


def named(kind: str, name: str) -> dict:
    (found,) = [d for d in by_kind(kind) if d["metadata"]["name"] == name]
    return found


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def envvars(command: click.Command) -> set[str]:
    return {p.envvar for p in command.params if isinstance(p.envvar, str)}


def known_envvars(sub: str) -> set[str]:
    command = cli.commands.get(sub)
    return envvars(command) if command else set()


def env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def the_container(workload: dict) -> dict:
    (container,) = pod_spec(workload)["containers"]
    return container


def port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_every_manifest_validates_against_the_kubernetes_schemas():
    docs = documents()
    kinds = {"Namespace", "ConfigMap", "PersistentVolumeClaim", "Service", "Job", "Deployment",
             "DaemonSet", "NetworkPolicy"}  # fmt: skip
    assert {d["kind"] for d in docs} >= kinds
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_lists_every_manifest_and_apply_f_skips_it():
    for folder in FOLDERS:
        kustomization = yaml.safe_load((folder / "Kustomization").read_text())
        # each lists its own folder's files alone: kustomize refuses a base (..) that holds
        # its overlay, and the base applied alone must not start relays
        listed = sorted(kustomization["resources"])
        assert listed == sorted(p.name for p in folder.glob("*.yaml")), folder
        assert not list(folder.glob("kustomization.y*ml"))  # `kubectl apply -f DIR` chokes
    kinds = {folder: {d["kind"] for d in documents([folder])} for folder in FOLDERS}
    assert "DaemonSet" in kinds[K8S / "relay"] and "DaemonSet" not in kinds[K8S]


def containers() -> list[tuple[str, dict, dict]]:
    """(subcommand, container, its pod spec) of every workload, in Kubernetes and compose."""
    found = []
    for workload in by_kind("Job") + by_kind("Deployment") + by_kind("DaemonSet"):
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
        unknown = {n for n in names if n.startswith("A3C_")} - known_envvars(sub)
        assert not unknown, f"a3c {sub} has no option for {sorted(unknown)}"
        checked += len(names)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in compose["services"].values():
        sub = service["command"][0]
        environment = service.get("environment", {})
        unknown = {n for n in environment if n.startswith("A3C_")}
        unknown -= known_envvars(sub)
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
    assert pod_spec(job)["restartPolicy"] == "OnFailure"  # exit 0 at the end: no restart
    actors = named("Deployment", "a3c-actor")
    actor = the_container(actors)
    assert env(actor)["A3C_AFTER_STOP"] == "wait"  # a finished run does not crash-loop actors
    service = named("Service", "a3c-learner")
    assert env(actor)["A3C_LEARNER"] == f"tcp://{service['metadata']['name']}:5555"
    for workload in by_kind("Deployment") + by_kind("DaemonSet"):
        for container in pod_spec(workload)["containers"]:
            assert all("hostPort" not in p for p in container.get("ports", []))
        assert "hostNetwork" not in pod_spec(workload)


def selected(service: dict, workload: dict) -> bool:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in service["spec"]["selector"].items())


def container_port(container: dict, name_or_number) -> int:
    for p in container["ports"]:
        if name_or_number in (p["name"], p["containerPort"]):
            return p["containerPort"]
    raise AssertionError(f"{container['name']} has no port {name_or_number}")


def test_relays_run_one_per_node_behind_a_node_local_service():
    relays = named("DaemonSet", "a3c-relay")
    relay = the_container(relays)
    assert relay["args"][0] == "relay"
    assert env(relay)["A3C_AFTER_STOP"] == "wait"  # a DaemonSet restarts a relay that exits
    service = named("Service", "a3c-relay")
    # an actor reaches the relay of its own node, never one across the network
    assert service["spec"]["internalTrafficPolicy"] == "Local"
    assert selected(service, relays)
    assert [w["metadata"]["name"] for w in by_kind("DaemonSet") + by_kind("Deployment")
            + by_kind("Job") if selected(service, w)] == ["a3c-relay"]  # fmt: skip
    (service_port,) = service["spec"]["ports"]
    assert service_port["port"] == 5556
    assert container_port(relay, service_port["targetPort"]) == port(env(relay)["A3C_BIND"])
    learner = named("Service", "a3c-learner")
    assert env(relay)["A3C_LEARNER"] == f"tcp://{learner['metadata']['name']}:5555"
    assert selected(learner, named("Job", "a3c-learner")) and not selected(learner, relays)


def test_relayed_actors_target_the_relay_service_and_run_where_relays_run():
    actors = named("Deployment", "a3c-actor-relayed")
    actor = the_container(actors)
    assert actor["args"][0] == "actor"
    service = named("Service", "a3c-relay")
    (service_port,) = service["spec"]["ports"]
    learner = f"tcp://{service['metadata']['name']}:{service_port['port']}"
    assert env(actor)["A3C_LEARNER"] == learner
    assert env(actor)["A3C_AFTER_STOP"] == "wait"
    # the same actor otherwise: only where it connects and which key it holds differ
    direct = the_container(named("Deployment", "a3c-actor"))
    assert {**env(actor), "A3C_LEARNER": None} == {**env(direct), "A3C_LEARNER": None}
    assert actor["resources"] == direct["resources"]
    # a node that runs actors runs a relay: the same placement rules, none by default
    relays = pod_spec(named("DaemonSet", "a3c-relay"))
    for key in ("nodeSelector", "tolerations", "affinity"):
        assert pod_spec(actors).get(key) == relays.get(key), key


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


def mounted_at(container: dict, workload: dict, path: str) -> str:
    """The Secret mounted at `path` in the container."""
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == path]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod_spec(workload)["volumes"] if v["name"] == mount["name"]]
    return volume["secret"]["secretName"]


def test_actor_pods_mount_no_secret_of_the_learner():
    (job,) = by_kind("Job")
    actors = named("Deployment", "a3c-actor")
    actor = the_container(actors)
    # the learner's pair and the list of who may join stay with the learner
    learner_only = secrets_mounted(job) - secrets_mounted(actors)
    assert {"a3c-learner-key", "a3c-authorized"} <= learner_only
    assert secrets_mounted(actors) == {"a3c-actor-key"}
    assert mounted_at(actor, actors, env(actor)["A3C_KEYS_DIR"]) == "a3c-actor-key"
    for workload in by_kind("Job") + by_kind("Deployment") + by_kind("DaemonSet"):
        for volume in pod_spec(workload)["volumes"]:
            assert "secret" not in volume or volume["secret"]["defaultMode"] & 0o007 == 0


def test_keys_at_both_hops_of_a_relay():
    relays = named("DaemonSet", "a3c-relay")
    relay = the_container(relays)
    relay_env = env(relay)
    # to the learner: a client pair of its own, which the learner authorizes as an actor's
    hop_up = mounted_at(relay, relays, relay_env["A3C_KEYS_DIR"])
    # to its actors: a server pair and authorized keys of a second set
    serve = mounted_at(relay, relays, relay_env["A3C_SERVE_KEYS_DIR"])
    authorized = mounted_at(relay, relays, relay_env["A3C_AUTHORIZED_DIR"])
    assert secrets_mounted(relays) == {hop_up, serve, authorized}
    # the learner's secrets stay with the learner, the direct actors' pair with them
    assert not secrets_mounted(relays) & secrets_mounted(named("Job", "a3c-learner"))
    assert hop_up != "a3c-actor-key"  # a pair of its own, revoked on its own
    actors = named("Deployment", "a3c-actor-relayed")
    actor = the_container(actors)
    relayed_key = mounted_at(actor, actors, env(actor)["A3C_KEYS_DIR"])
    assert secrets_mounted(actors) == {relayed_key}
    assert relayed_key not in {"a3c-actor-key", hop_up, serve, authorized}


def test_metrics_are_served_where_the_scrape_annotations_say():
    for workload in (named("Job", "a3c-learner"), named("DaemonSet", "a3c-relay")):
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        container = the_container(workload)
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        metrics = int(env(container)["A3C_METRICS_PORT"])
        assert int(annotations["prometheus.io/port"]) == metrics
        assert container_port(container, "metrics") == metrics


def test_relay_probes_ask_its_metrics_page():
    relay = the_container(named("DaemonSet", "a3c-relay"))
    for probe in ("readinessProbe", "livenessProbe"):
        get = relay[probe]["httpGet"]
        assert get["path"] == "/metrics"
        assert container_port(relay, get["port"]) == int(env(relay)["A3C_METRICS_PORT"])


# Who may open a connection to whom, as the network policies of namespace a3c have it.
PEERS = {
    "learner": ("a3c", {"app": "a3c-learner"}),
    "actor": ("a3c", {"app": "a3c-actor"}),
    "relayed actor": ("a3c", {"app": "a3c-actor-relayed"}),
    "relay": ("a3c", {"app": "a3c-relay"}),
    "scraper": ("monitoring", {"app": "prometheus"}),
}
PORTS = (5555, 5556, 9100)


def matches(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # all this evaluator understands
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def peer_matches(peer: dict, policy_namespace: str, other: str) -> bool:
    assert set(peer) <= {"podSelector", "namespaceSelector"}, peer
    namespace, labels = PEERS[other]
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": namespace}
        in_namespace = matches(peer["namespaceSelector"], namespace_labels)
    else:
        in_namespace = namespace == policy_namespace
    return in_namespace and matches(peer.get("podSelector", {}), labels)


def admits(direction: str, who: str, other: str, number: int) -> bool:
    """Whether the policies selecting `who` let `other` in (Ingress) or `who` out to
    `other` (Egress) on TCP port `number`; a pod no policy selects is open."""
    namespace, labels = PEERS[who]
    policies = [
        p for p in by_kind("NetworkPolicy")
        if p["metadata"]["namespace"] == namespace and matches(p["spec"]["podSelector"], labels)
        and direction in p["spec"]["policyTypes"]
    ]  # fmt: skip
    if not policies:
        return True
    key = "from" if direction == "Ingress" else "to"
    for policy in policies:
        for rule in policy["spec"].get(direction.lower(), []):
            peers = rule.get(key) or [{"namespaceSelector": {}}]
            ports = rule.get("ports") or [{"port": number}]
            if any(peer_matches(peer, namespace, other) for peer in peers) and any(
                p["port"] == number and p.get("protocol", "TCP") == "TCP" for p in ports
            ):
                return True
    return False


def test_network_policies_open_exactly_the_paths_of_both_layouts():
    open_paths = {
        (source, target, number)
        for source in PEERS for target in PEERS for number in PORTS
        if target != "scraper"
        and admits("Egress", source, target, number) and admits("Ingress", target, source, number)
    }  # fmt: skip
    assert open_paths == {
        ("actor", "learner", 5555),  # the direct layout
        ("relayed actor", "relay", 5556),  # the relay layout: actors to their relay,
        ("relay", "learner", 5555),  # and relays to the learner
        # metrics to any pod of the cluster that may open connections at all: a scraper
        # elsewhere, and the learner, which no egress policy confines
        ("scraper", "learner", 9100),
        ("scraper", "relay", 9100),
        ("learner", "learner", 9100),
        ("learner", "relay", 9100),
    }
    for policy in by_kind("NetworkPolicy"):
        egress = policy["spec"].get("egress", [])
        # where egress is confined, DNS is the one port open to any destination
        for rule in egress:
            if "to" not in rule:
                assert {p["port"] for p in rule["ports"]} == {53}


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
