"""``python -m services.gateway keys create|list|revoke``, and serving without a subcommand."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from services.gateway.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli_env(monkeypatch, tmp_path, redis, redis_url):
    """The CLI reads its settings like the server: from the environment (no stray .env)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDIS_URL", redis_url)


def test_create_list_revoke(cli_env, capsys):
    assert main(["keys", "create", "--name", "ci bot", "--rate", "submit=10/min"]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert len(out.splitlines()) == 1 and key.startswith("ak_")
    prefix = key[: len("ak_") + 8]
    assert prefix in err and "only once" in err

    assert main(["keys", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["PREFIX", "NAME", "RATE", "CREATED", "STATUS", "ROLE"]
    row = lines[1].split("\t")
    assert (row[0], row[1], row[2], row[4]) == (prefix, "ci bot", "submit=10/min", "active")
    assert row[5] == "client"
    assert key not in "\n".join(lines)

    assert main(["keys", "revoke", prefix]) == 0
    assert capsys.readouterr().out.startswith(f"revoked {prefix} (ci bot) at ")
    main(["keys", "list"])
    assert capsys.readouterr().out.splitlines()[1].split("\t")[4].startswith("revoked ")
    assert main(["keys", "revoke", "ak_ffffffff"]) == 1
    assert "no key with prefix" in capsys.readouterr().err


def test_create_admin_lists_the_key_as_admin(cli_env, capsys):
    assert main(["keys", "create", "--name", "on call", "--admin"]) == 0
    assert "created admin key" in capsys.readouterr().err
    main(["keys", "list"])
    row = capsys.readouterr().out.splitlines()[1].split("\t")
    assert (row[1], row[4], row[5]) == ("on call", "active", "admin")


async def test_the_module_creates_an_admin_key_that_opens_the_dashboard(
    make_gateway, redis, redis_url
):
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "services.gateway", "keys", "create", "--name", "ops", "--admin"),
        env={**os.environ, "PYTHONPATH": str(REPO), "REDIS_URL": redis_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    client = await make_gateway(api_keys_required="true")
    headers = {"Authorization": f"Bearer {out.decode().strip()}"}
    assert (await client.get("/api/v1/admin/overview", headers=headers)).status == 200
    assert (await client.get("/api/v1/admin/overview")).status == 401


@pytest.mark.parametrize(
    "argv",
    [
        ["keys", "create"],
        ["keys", "create", "--name", " "],
        ["keys", "create", "--name", "x", "--rate", "lots"],
        ["keys", "create", "--name", "x", "--rate", "off"],
        ["keys", "create", "--name", "x", "--rate", "write=5/min"],
        ["keys", "rotate"],
    ],
)
def test_bad_arguments_exit_2(cli_env, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().out == ""


async def test_the_module_creates_a_key_the_gateway_accepts(make_gateway, redis, redis_url):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.gateway",
        "keys",
        "create",
        "--name",
        "from the shell",
        env={**os.environ, "PYTHONPATH": str(REPO), "REDIS_URL": redis_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    key = out.decode().strip()
    client = await make_gateway(api_keys_required="true")
    headers = {"Authorization": f"Bearer {key}"}
    assert (await client.post("/api/v1/tts", json={"text": "hi"}, headers=headers)).status == 202
    assert (await client.post("/api/v1/tts", json={"text": "hi"})).status == 401
