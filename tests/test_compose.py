"""docker-compose.yml against the Compose Specification schema, plus the service contract
(no Docker engine runs here, so the file is checked statically)."""

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT.parent / "shared" / "schemas" / "compose-spec.json"


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.mark.skipif(not SCHEMA.exists(), reason=f"compose schema not found at {SCHEMA}")
def test_compose_file_matches_the_compose_spec(compose):
    jsonschema.validate(compose, json.loads(SCHEMA.read_text()))


def test_services_scale_and_switch_mode_by_variable(compose):
    learner, actor = compose["services"]["learner"], compose["services"]["actor"]
    # --scale actor=N needs no fixed name or host port on the actor
    assert "container_name" not in actor and "ports" not in actor
    assert actor["command"] == ["actor"] and learner["command"] == ["learner"]
    assert "A3C_MODE" in learner["environment"]
    assert "${A3C_MODE" in learner["environment"]["A3C_MODE"]
    assert actor["environment"]["A3C_LEARNER"] == "tcp://learner:5555"
    assert learner["environment"]["A3C_BIND"].endswith(":5555")
    # the run directory lives on a volume
    run_dir = learner["environment"]["A3C_RUN_DIR"]
    mounts = [v.split(":")[1] for v in learner["volumes"]]
    assert any(run_dir.startswith(m) for m in mounts)
    assert actor["image"] == learner["image"]


def mounts(service: dict) -> dict[str, tuple[str, bool]]:
    """Container path -> (source, read-only) of a service's short-syntax volumes."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *options = volume.split(":")
        found[target] = (source, "ro" in options)
    return found


def default(value: str) -> str:
    """What a `${VAR-default}` or `${VAR:-default}` value is when VAR is not set."""
    match = re.fullmatch(r"\$\{[A-Z0-9_]+:?-([^}]*)\}", value)
    return match.group(1) if match else value


def test_keys_are_made_once_by_a_one_shot_service_before_anyone_starts(compose):
    keygen = compose["services"]["keygen"]
    assert keygen["command"] == ["keygen", "/keys", "--actors", "1", "--keep-existing"]
    assert keygen["image"] == compose["services"]["learner"]["image"]
    assert mounts(keygen) == {
        "/keys/learner": ("learner-keys", False),
        "/keys/actor-1": ("actor-keys", False),
    }
    assert {"learner-keys", "actor-keys"} <= set(compose["volumes"])
    for name in ("learner", "actor"):
        depends = compose["services"][name]["depends_on"]
        assert depends["keygen"]["condition"] == "service_completed_successfully"


def test_keys_are_on_by_default_and_each_service_mounts_only_its_own(compose):
    learner, actor = compose["services"]["learner"], compose["services"]["actor"]
    learner_keys = default(learner["environment"]["A3C_KEYS_DIR"])
    actor_keys = default(actor["environment"]["A3C_KEYS_DIR"])
    assert learner_keys == "/keys/learner" and actor_keys == "/keys/actor-1"
    # the learner holds its pair and authorized/ (under its keys dir), nothing of an actor's
    assert mounts(learner)[learner_keys] == ("learner-keys", True)
    # the actors hold their pair and the learner's public key, never the learner's secret
    assert mounts(actor) == {actor_keys: ("actor-keys", True)}
    for service in (learner, actor):
        sources = {source for source, _ in mounts(service).values()}
        assert not any(s in (".", "./keys") or s.startswith("./keys/") for s in sources)
    # keys off takes two empty folders and the learner's explicit consent
    assert learner["environment"]["A3C_INSECURE"] == "${A3C_INSECURE:-}"
    header = (ROOT / "docker-compose.yml").read_text().split("services:")[0]
    assert "A3C_LEARNER_KEYS= A3C_ACTOR_KEYS= A3C_INSECURE=1 docker compose up" in header


def test_every_service_keeps_the_hardened_settings(compose):
    for name, service in compose["services"].items():
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert not service["user"].startswith(("0", "root", "${A3C_UID:-0}")), name
        assert "no-new-privileges:true" in service["security_opt"], name


def test_the_image_gives_the_key_volumes_mount_points_any_user_can_fill():
    # keygen runs as A3C_UID, which a new named volume's root must let write
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "chmod 1777 /keys/learner /keys/actor-1" in dockerfile


def test_dockerfile_uses_the_shared_constraints_and_the_cli():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "-c constraints.txt" in dockerfile
    assert 'ENTRYPOINT ["a3c"]' in dockerfile
    import tomllib

    installed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.M))
    assert copied == set(installed["packages"])  # the image holds the product, no more


def relay_services(compose) -> tuple[dict, dict, dict]:
    services = compose["services"]
    return services["keygen-relay"], services["relay"], services["actor-relayed"]


def test_the_relay_profile_puts_a_relay_between_the_learner_and_its_actors(compose):
    keygen, relay, actors = relay_services(compose)
    for service in (keygen, relay, actors):
        assert service["profiles"] == ["relay"]
    # a plain `up` starts what it always did
    for name in ("keygen", "learner", "actor"):
        assert "profiles" not in compose["services"][name]
    assert relay["command"] == ["relay"] and actors["command"] == ["actor"]
    assert relay["environment"]["A3C_LEARNER"] == "tcp://learner:5555"
    bind_port = relay["environment"]["A3C_BIND"].rsplit(":", 1)[1]
    assert actors["environment"]["A3C_LEARNER"] == f"tcp://relay:{bind_port}"
    # --scale actor-relayed=N, and nothing outside the project reaches the relay
    assert "container_name" not in actors and "ports" not in actors and "ports" not in relay
    assert relay["depends_on"]["learner"]["condition"] == "service_started"
    assert actors["depends_on"]["relay"]["condition"] == "service_started"
    assert relay["image"] == actors["image"] == compose["services"]["learner"]["image"]
    header = (ROOT / "docker-compose.yml").read_text().split("services:")[0]
    assert "docker compose --profile relay up --scale actor=0 --scale actor-relayed=8" in header


def test_keys_at_both_hops_of_the_relay(compose):
    keygen, relay, actors = relay_services(compose)
    # the second key set, made once as the first is, at the mount points keygen uses
    first = compose["services"]["keygen"]
    assert keygen["command"] == first["command"] and keygen["image"] == first["image"]
    assert mounts(keygen) == {
        "/keys/learner": ("relay-serve-keys", False),
        "/keys/actor-1": ("relayed-actor-keys", False),
    }
    assert {"relay-serve-keys", "relayed-actor-keys"} <= set(compose["volumes"])
    for service, keygens in ((relay, ("keygen", "keygen-relay")), (actors, ("keygen-relay",))):
        for name in keygens:
            assert service["depends_on"][name]["condition"] == "service_completed_successfully"
    # to the learner the relay holds a pair the learner authorizes, and follows the actors
    # when keys are off; to its actors, the server pair of the second set
    hop_up = relay["environment"]["A3C_KEYS_DIR"]
    assert hop_up == compose["services"]["actor"]["environment"]["A3C_KEYS_DIR"]
    serve = relay["environment"]["A3C_SERVE_KEYS_DIR"]
    assert mounts(relay) == {
        default(hop_up): ("actor-keys", True),
        serve: ("relay-serve-keys", True),
    }
    # relayed actors hold the second set's actor pair alone: nothing the learner accepts
    keys = actors["environment"]["A3C_KEYS_DIR"]
    assert mounts(actors) == {keys: ("relayed-actor-keys", True)}
