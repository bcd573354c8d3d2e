"""The registry, its declarations against the YAMLs, registration into a host."""
import configparser
import re

import pytest
import yaml

from r3dm_epymarl.config import Key, validate
from r3dm_epymarl.errors import ConfigError
from r3dm_epymarl.hosts import REGISTRY_MODULES, Host
from r3dm_epymarl.paths import config_dir
from r3dm_epymarl.registry import ALGORITHMS, COMPONENTS, RegistrationError, _REGISTERED, register
from tests.helpers import REPO


class FakeHost(Host):
    """Plain dict registries: registration logic without any host installed."""

    name = "fake"

    def __init__(self):
        self.registries = {kind: {} for kind in REGISTRY_MODULES}
        self.registries["learners"]["q_learner"] = object()

    def registry(self, kind):
        return self.registries[kind]


@pytest.fixture
def fake_host():
    host = FakeHost()
    yield host
    _REGISTERED.pop(host.name, None)


def test_register_adds_every_component_and_is_idempotent(fake_host):
    assert register(fake_host) == config_dir()
    first = {kind: dict(reg) for kind, reg in fake_host.registries.items()}
    for kind, entries in COMPONENTS.items():
        assert set(entries) <= set(fake_host.registries[kind])
    register(fake_host)
    assert {kind: dict(reg) for kind, reg in fake_host.registries.items()} == first


def test_register_refuses_a_collision_and_changes_nothing(fake_host):
    kind, key = next((k, key) for k, entries in COMPONENTS.items() for key in entries)
    squatter = type("Squatter", (), {})
    fake_host.registries[kind][key] = squatter
    before = {k: dict(r) for k, r in fake_host.registries.items()}
    with pytest.raises(RegistrationError, match=f"'{key}'.*Squatter"):
        register(fake_host)
    assert {k: dict(r) for k, r in fake_host.registries.items()} == before


def test_register_into_pymarlzooplus_is_idempotent():
    pytest.importorskip("pymarlzooplus")
    import pymarlzooplus.learners as zoo_learners
    import pymarlzooplus.modules.mixers as zoo_mixers

    register("pymarlzooplus")
    snapshot = dict(zoo_learners.REGISTRY)
    register("pymarlzooplus")
    assert zoo_learners.REGISTRY == snapshot
    assert zoo_learners.REGISTRY["r3dm_q_learner"] is zoo_learners.REGISTRY["q_learner"]
    assert {"qmix", "vdn"} <= set(zoo_mixers.REGISTRY)  # the mixer registry the plug-in creates


@pytest.mark.parametrize("algo", list(ALGORITHMS.values()), ids=list(ALGORITHMS))
def test_yaml_matches_declaration(algo):
    config = yaml.safe_load(algo.yaml_path.read_text())
    assert config["name"] == algo.name
    for part in ("learner", "mac", "agent", "mixer"):
        assert config.get(part) == getattr(algo, part), part
    validate(config, algo.load_schema(), where=algo.name)  # every key the code reads, with its type


@pytest.mark.parametrize("path", sorted(config_dir().glob("*/*.yaml")), ids=lambda p: p.name)
def test_every_yaml_key_is_commented(path):
    for line in path.read_text().splitlines():
        if re.match(r"^\s*[A-Za-z_][\w]*:\s*\S", line):  # a key with a value on the line
            assert "#" in line, f"{path.name}: undocumented key: {line.strip()}"


def test_strict_types():
    schema = {"flag": Key(bool, "a switch"), "n": Key(int, "a count", minimum=1)}
    validate({"flag": False, "n": 2}, schema, "t")
    with pytest.raises(ConfigError, match="'flag' must be true or false"):
        validate({"flag": "False", "n": 2}, schema, "t")
    with pytest.raises(ConfigError, match="'n' must be a int"):
        validate({"flag": True, "n": True}, schema, "t")
    with pytest.raises(ConfigError, match="'n' is 0"):
        validate({"flag": True, "n": 0}, schema, "t")
    with pytest.raises(ConfigError, match="'n' is missing"):
        validate({"flag": True}, schema, "t")


def test_setup_cfg_ships_every_subpackage():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "r3dm_epymarl").rglob("__init__.py")}
    assert on_disk <= listed, f"add to setup.cfg packages: {sorted(on_disk - listed)}"


def test_each_algorithm_has_its_own_learner_so_a_config_names_one_algorithm():
    from r3dm_epymarl.registry import ALGORITHMS, algorithm_of

    assert len({a.learner for a in ALGORITHMS.values()}) == len(ALGORITHMS)
    for algo in ALGORITHMS.values():
        assert algorithm_of({"learner": algo.learner, "name": "renamed"}) is algo
    assert algorithm_of({"learner": "q_learner"}) is None  # the host's own
