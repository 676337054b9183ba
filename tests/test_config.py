"""Settings: keel.toml, KEEL_* overrides, and one clear error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel._config_template import CONFIG_TEMPLATE, write_config_template
from keel.config import Settings
from keel.errors import ConfigError


def test_defaults_put_everything_under_the_project_directory(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path)
    assert settings.resolved_metadata_url() == f"sqlite:///{tmp_path / '.keel' / 'keel.db'}"
    assert settings.resolved_artifacts_url() == str(tmp_path / ".keel" / "artifacts")


def test_the_template_loads_and_matches_the_defaults(tmp_path: Path) -> None:
    write_config_template(tmp_path)
    assert Settings.load(tmp_path).model_dump(exclude={"actor"}) == Settings.load(
        tmp_path / "nowhere"
    ).model_dump(exclude={"actor", "project_dir"}) | {"project_dir": tmp_path}


def test_the_template_is_not_overwritten_without_force(tmp_path: Path) -> None:
    write_config_template(tmp_path)
    (tmp_path / "keel.toml").write_text('actor = "me"\n')
    with pytest.raises(ConfigError, match="already exists.*--force"):
        write_config_template(tmp_path)
    assert (tmp_path / "keel.toml").read_text() == 'actor = "me"\n'
    write_config_template(tmp_path, force=True)
    assert (tmp_path / "keel.toml").read_text() == CONFIG_TEMPLATE


def test_file_values_are_read(tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text(
        'metadata_url = "sqlite:///db/meta.db"\n[tracking]\nmetric_batch_size = 7\n'
    )
    settings = Settings.load(tmp_path)
    assert settings.tracking.metric_batch_size == 7
    assert settings.resolved_metadata_url() == f"sqlite:///{tmp_path / 'db' / 'meta.db'}"


def test_environment_variables_override_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "keel.toml").write_text(
        'actor = "file"\n[registry]\nrequire_distinct_approver = false\n'
    )
    monkeypatch.setenv("KEEL_ACTOR", "env")
    monkeypatch.setenv("KEEL_REGISTRY__REQUIRE_DISTINCT_APPROVER", "true")
    settings = Settings.load(tmp_path)
    assert settings.actor == "env"
    assert settings.registry.require_distinct_approver is True


def test_keyword_overrides_beat_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_ACTOR", "env")
    assert Settings.load(tmp_path, actor="explicit").actor == "explicit"


def test_an_absolute_or_remote_artifact_url_is_kept(tmp_path: Path) -> None:
    assert Settings.load(tmp_path, artifacts_url="memory://bucket/x").resolved_artifacts_url() == (
        "memory://bucket/x"
    )
    assert Settings.load(tmp_path, artifacts_url="/srv/a").resolved_artifacts_url() == "/srv/a"
    file_url = Settings.load(tmp_path, artifacts_url="file://rel/dir").resolved_artifacts_url()
    assert file_url == str(tmp_path / "rel" / "dir")


def test_a_corrupt_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text("metadata_url = \n[[[")
    with pytest.raises(ConfigError, match=r"keel\.toml: is not valid TOML .*line 1"):
        Settings.load(tmp_path)


def test_an_unknown_key_is_named(tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text("metdata_url = 'sqlite:///x.db'\n")
    with pytest.raises(ConfigError, match="'metdata_url'.*not a keel setting"):
        Settings.load(tmp_path)


def test_an_unknown_nested_key_is_named(tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text("[tracking]\nbatch = 3\n")
    with pytest.raises(ConfigError, match="'tracking.batch'"):
        Settings.load(tmp_path)


@pytest.mark.parametrize(
    "url",
    ["mysql://root@localhost/keel", "not a url", "oracle://x"],
)
def test_an_unsupported_database_url_is_named(tmp_path: Path, url: str) -> None:
    (tmp_path / "keel.toml").write_text(f"metadata_url = '{url}'\n")
    with pytest.raises(ConfigError, match=r"'metadata_url' in .*keel\.toml"):
        Settings.load(tmp_path)


def test_an_unknown_storage_protocol_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'artifacts_url'.*unknown storage protocol 'nope://'"):
        Settings.load(tmp_path, artifacts_url="nope://bucket")


def test_a_bad_environment_value_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_TRACKING__METRIC_BATCH_SIZE", "lots")
    with pytest.raises(
        ConfigError, match="'tracking.metric_batch_size' in environment variable KEEL_TRACKING__"
    ):
        Settings.load(tmp_path)


def test_a_value_out_of_range_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text("[tracking]\nmetric_batch_size = 0\n")
    with pytest.raises(ConfigError, match="metric_batch_size.*greater than or equal to 1"):
        Settings.load(tmp_path)


def test_the_error_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text("[tracking]\nmetric_batch_size = 'x'\nbogus = 1\n")
    with pytest.raises(ConfigError) as caught:
        Settings.load(tmp_path)
    assert "\n" not in str(caught.value)
    assert "1 more problem" in str(caught.value)
