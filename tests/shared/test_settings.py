import pytest

from shared.settings import RedisSettings, SettingsError, load_or_exit, load_settings


def test_defaults_are_the_seed_values():
    s = load_settings(RedisSettings, {})
    assert (s.redis_host, s.redis_port, s.max_concurrent_tasks, s.task_timeout) == (
        "localhost",
        6379,
        10,
        60,
    )
    assert s.redis_dsn == "redis://localhost:6379/0"


def test_redis_url_takes_precedence():
    s = load_settings(RedisSettings, {"REDIS_URL": "rediss://h:1/2", "REDIS_HOST": "x"})
    assert s.redis_dsn == "rediss://h:1/2"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"REDIS_PORT": "abc"}, "REDIS_PORT"),
        ({"REDIS_PORT": "70000"}, "REDIS_PORT"),
        ({"ENVIRONMENT": "staging"}, "ENVIRONMENT"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
    ],
)
def test_bad_value_names_the_variable(env, name):
    with pytest.raises(SettingsError, match=rf"^{name}: "):
        load_settings(RedisSettings, env)


def test_load_or_exit_prints_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        load_or_exit(RedisSettings, {"TASK_TIMEOUT": "0"})
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TASK_TIMEOUT" in err


def test_dotenv_file_is_read(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("REDIS_PORT=6390\nTASK_TIMEOUT=5\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASK_TIMEOUT", "7")
    s = load_settings(RedisSettings)
    assert (s.redis_port, s.task_timeout) == (6390, 7)
