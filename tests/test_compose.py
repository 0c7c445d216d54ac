"""docker-compose.yml against the Compose Specification schema, plus the service contract
(no Docker engine runs here, so the file is checked statically)."""

import json
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


def test_keyed_set_up_mounts_keys_into_both_services(compose):
    for name in ("learner", "actor"):
        service = compose["services"][name]
        assert "A3C_KEYS_DIR" in service["environment"]
        assert any(v.split(":")[1] == "/keys" for v in service["volumes"])


def test_dockerfile_uses_the_shared_constraints_and_the_cli():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "-c constraints.txt" in dockerfile
    assert 'ENTRYPOINT ["a3c"]' in dockerfile
    for package in ("a3c", "actor", "learner", "protocol", "rlcore"):
        assert f"COPY {package} " in dockerfile
