"""Every option is declared once, as a settings field: ``--help``, validation, ``run``'s
command line for its ``serve`` and the README cannot disagree."""

from __future__ import annotations

import re
from pathlib import Path

import apsw
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from agenttop.cli import main
from agenttop.config import RUN_DOES_NOT_PASS, ServeSettings
from agenttop.options import build, cli_of, flag_of, serve_args

README = Path(__file__).parent.parent / "README.md"
SERVE_FLAGS = {name: flag_of(name, info) for name, info in ServeSettings.model_fields.items()}


def help_of(command: str) -> str:
    result = CliRunner().invoke(main, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_serve_option_is_in_serve_help_and_the_readme_usage():
    text = help_of("serve")
    usage = re.search(r"```\nagenttop serve (.*?)```", README.read_text(), re.S)
    assert usage, "the README has no `agenttop serve [...]` usage block"
    for flag in SERVE_FLAGS.values():
        assert f"{flag} " in text
        assert re.search(rf"{re.escape(flag)}\b", usage.group(1)), f"{flag} not in the README"


def test_run_takes_every_serve_option_but_those_it_says_it_does_not():
    text = help_of("run")
    for name, flag in SERVE_FLAGS.items():
        assert (f"{flag} " in text) == (name not in RUN_DOES_NOT_PASS), flag
    assert set(RUN_DOES_NOT_PASS) <= set(SERVE_FLAGS)


def every_field_changed() -> ServeSettings:
    """Settings in which every field differs from its default."""
    return ServeSettings(
        db=Path("/tmp/x.db"), grpc="127.0.0.1:5317", http="off", max_message_mb=8,
        max_inflight_mb=32, body_timeout_s=2.5, queue_spans=100, sync="normal", decoders=3,
        keep_pii=True, ignore_pii=("phone", "ipv4"),
        max_value_kb=8, retention_s=3600, max_db_mb=500, rules=Path("/tmp/rules.toml"),
        prices=Path("/tmp/prices.toml"),
        on_alert="notify-send alert", alert_interval_s=1.5, token=SecretStr("t0ken"),
        insecure=True, tls_cert=Path("/tmp/c.pem"), tls_key=Path("/tmp/k.pem"),
        tls_client_ca=Path("/tmp/ca.pem"), log_format="json",
        forward="grpc://upstream:4317", forward_header=(SecretStr("a: b"), SecretStr("c: d")),
        forward_queue_mb=10, prometheus="127.0.0.1:9464")


def test_every_field_is_changed_by_the_fixture():
    settings = every_field_changed()
    defaults = ServeSettings()
    unchanged = [n for n in ServeSettings.model_fields
                 if getattr(settings, n) == getattr(defaults, n)]
    assert unchanged == []


def test_run_passes_every_serve_option_on_and_secrets_through_the_environment():
    settings = every_field_changed()
    args, env = serve_args(settings, exclude=RUN_DOES_NOT_PASS)
    for name, info in ServeSettings.model_fields.items():
        flag = SERVE_FLAGS[name]
        if name in RUN_DOES_NOT_PASS:
            assert flag not in args
        elif cli_of(info).secret:
            assert flag not in args and cli_of(info).env in env
        else:
            assert flag in args, flag
    assert env == {"AGENTTOP_TOKEN": "t0ken", "AGENTTOP_FORWARD_HEADERS": "a: b\nc: d"}
    assert "t0ken" not in args
    # What run passes, serve reads back as the same settings.
    def value(flag: str) -> str:
        return args[args.index(flag) + 1]

    assert value("--retention") == "1h" and value("--http") == "off"
    assert value("--max-message-mb") == "8" and value("--queue-spans") == "100"
    assert value("--max-inflight-mb") == "32"


def test_what_run_passes_parses_back_into_the_same_settings(monkeypatch, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text("")
    prices = tmp_path / "prices.toml"
    prices.write_text("")
    settings = every_field_changed().model_copy(
        update={"log_format": "text", "rules": rules, "prices": prices})
    args, env = serve_args(settings, exclude=RUN_DOES_NOT_PASS)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    seen = {}

    async def capture(settings, rules, command, log_format):
        seen["settings"] = settings

    monkeypatch.setattr("agenttop.serve.serve_forever", capture)
    monkeypatch.setattr("agenttop.cli._load_rules", lambda path: [])
    result = CliRunner().invoke(main, ["serve", *args])
    assert result.exit_code == 0, result.output
    assert seen["settings"] == settings


def test_default_settings_pass_only_the_database_and_the_address():
    args, env = serve_args(ServeSettings(db=Path("/tmp/a.db")))
    assert args == ["--db", "/tmp/a.db", "--grpc", "127.0.0.1:4317"] and env == {}


@pytest.mark.parametrize(("args", "message"), [
    (["--alert-interval", "0"], "--alert-interval: Input should be greater than or equal to 0.1"),
    (["--max-message-mb", "4096"], "--max-message-mb: Input should be less than or equal"),
    (["--retention", "soon"], "--retention: 'soon' is not a duration"),
    (["--on-alert", "'unclosed"], "--on-alert: No closing quotation"),
    (["--max-inflight-mb", "many"], "'many' is not a valid integer"),
])
def test_bounds_are_checked_once_and_name_the_option(args, message):
    result = CliRunner().invoke(main, ["serve", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_build_leaves_what_was_not_given_at_the_model_default():
    settings = build(ServeSettings, {"grpc": None, "keep_pii": False, "forward_header": ()})
    assert settings == ServeSettings()


def test_ui_on_a_file_it_cannot_watch_is_one_line(tmp_path):
    foreign = tmp_path / "other.db"
    conn = apsw.Connection(str(foreign))
    conn.execute("CREATE TABLE notes (x)")
    conn.close()
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a database at all\n")
    for path, says in ((foreign, "is an SQLite file but not an agenttop database"),
                       (text, "not")):
        result = CliRunner().invoke(main, ["ui", "--db", str(path)])
        assert result.exit_code == 1, result.output
        [line] = result.output.strip().splitlines()
        assert line.startswith("agenttop: error: ") and says in line


def test_help_shows_the_actual_default_database_path():
    from agenttop.config import default_db_path, home_relative

    shown = home_relative(default_db_path())
    assert shown.endswith("agenttop.db") and "user data directory" not in shown
    for command in ("ui", "serve", "run"):
        result = CliRunner().invoke(main, [command, "--help"], terminal_width=200)
        assert f"[default: {shown}]" in result.output, command
