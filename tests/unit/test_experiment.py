"""Loading, resolving and validating experiment files; one-line errors naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.errors import ConfigError
from harness.experiment import load_experiment, parse_vars

ROOT = Path(__file__).resolve().parents[2]
NODE_LOSS = ROOT / "experiments" / "gpu-node-loss.yaml"


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _doc() -> dict:
    return yaml.safe_load(NODE_LOSS.read_text())


def test_catalog_experiment_is_valid_and_resolved() -> None:
    exp = load_experiment(NODE_LOSS)
    assert exp.name == "gpu-node-loss"
    assert exp.spec.load.shape.duration_s == exp.configuration["duration_s"]
    assert [n.name for n in exp.spec.platform.nodes] == ["node-a", "node-b"]
    ext = exp.document["extensions"][0]
    assert ext["load"]["shape"]["baseline_users"] == exp.configuration["baseline_users"]


def test_var_overrides_configuration_with_types() -> None:
    exp = load_experiment(NODE_LOSS, parse_vars(["duration_s=45", "spike_start_s=5"]))
    assert exp.spec.load.shape.duration_s == 45
    assert exp.configuration["spike_start_s"] == 5
    assert isinstance(exp.configuration["duration_s"], int)


def test_unknown_var_names_known_keys() -> None:
    with pytest.raises(ConfigError) as err:
        load_experiment(NODE_LOSS, parse_vars(["durationn_s=3"]))
    assert "durationn_s" in str(err.value) and "duration_s" in str(err.value)


def test_malformed_var() -> None:
    with pytest.raises(ConfigError, match="expected NAME=VALUE"):
        parse_vars(["novalue"])


def test_unknown_field_is_named_with_its_path(tmp_path: Path) -> None:
    doc = _doc()
    doc["extensions"][0]["load"]["shape"]["spike_multipler"] = 2
    with pytest.raises(ConfigError) as err:
        load_experiment(_write(tmp_path, doc))
    msg = str(err.value)
    assert msg.startswith(str(tmp_path / "exp.yaml"))
    assert "extensions[0].load.shape.spike_multipler: unknown field" in msg
    assert "\n" not in msg


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    doc = _doc()
    doc["extensions"][0]["platform"]["nodes"][0]["replicas"] = "many"
    with pytest.raises(ConfigError) as err:
        load_experiment(_write(tmp_path, doc))
    assert "extensions[0].platform.nodes[0].replicas" in str(err.value)
    assert "integer" in str(err.value) and "'many'" in str(err.value)


def test_spike_outside_duration_rejected() -> None:
    with pytest.raises(ConfigError, match="must not exceed duration_s"):
        load_experiment(NODE_LOSS, parse_vars(["duration_s=30"]))


def test_duplicate_node_names_rejected(tmp_path: Path) -> None:
    doc = _doc()
    doc["extensions"][0]["platform"]["nodes"][1]["name"] = "node-a"
    with pytest.raises(ConfigError, match="repeated: node-a"):
        load_experiment(_write(tmp_path, doc))


def test_unresolved_placeholder_named(tmp_path: Path) -> None:
    doc = _doc()
    doc["extensions"][0]["warmup_s"] = "${nope}"
    with pytest.raises(ConfigError, match=r"extensions\[0\]\.warmup_s: \$\{nope\} names no"):
        load_experiment(_write(tmp_path, doc))


def test_missing_extension_block(tmp_path: Path) -> None:
    doc = _doc()
    doc["extensions"] = []
    with pytest.raises(ConfigError, match="name: gpuchaos"):
        load_experiment(_write(tmp_path, doc))


def test_invalid_chaos_toolkit_document(tmp_path: Path) -> None:
    doc = _doc()
    del doc["method"]
    with pytest.raises(ConfigError, match="method: required, missing"):
        load_experiment(_write(tmp_path, doc))


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("title: x\nmethod: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: line \d+: not valid YAML"):
        load_experiment(path)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"does-not-exist\.yaml: no such file"):
        load_experiment("experiments/does-not-exist.yaml")


def test_outlier_ejection_from_a_variable_and_its_bad_values() -> None:
    path = "experiments/gpu-memory-exhaustion.yaml"
    assert load_experiment(path).spec.platform.outlier_ejection is None  # type: ignore[union-attr]
    on = load_experiment(path, {"outlier_ejection": {"consecutive_5xx": 3}})
    ejection = on.spec.platform.outlier_ejection  # type: ignore[union-attr]
    assert ejection is not None and ejection.consecutive_5xx == 3
    assert ejection.base_ejection_s == 30.0
    with pytest.raises(
        ConfigError,
        match=r"platform\.outlier_ejection\.consecutive_5xx: .*greater than or equal to 1",
    ):
        load_experiment(path, {"outlier_ejection": {"consecutive_5xx": 0}})
