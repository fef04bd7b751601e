"""`client_command`: the one body every client command shares (open, run, show, close)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from meshfs_client._client import MeshFSClient
from meshfs_client.cli._context import CliState, client_command

opened: list[MeshFSClient] = []


def _show(state: CliState, answer: dict[str, Any]) -> None:
    click.echo(f"text: {answer['n']}")


@click.command()
@click.option("--n", type=int, default=1)
@client_command(text=_show)
async def answering(state: CliState, client: MeshFSClient, n: int) -> dict[str, Any]:
    """Answers with its option and the server it was opened for."""
    opened.append(client)
    return {"n": n, "server": client.server}


@click.command()
@client_command(text=_show)
async def streaming(state: CliState, client: MeshFSClient) -> None:
    """Prints as it goes; nothing is shown after it."""
    click.echo("streamed")


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MESHFS_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("MESHFS_TOKEN", "t")  # nothing is sent: the bodies make no request
    opened.clear()


def test_text_json_and_the_client_is_closed_after() -> None:
    runner = CliRunner()
    text = runner.invoke(answering, ["--n", "3"], obj=CliState(server="http://127.0.0.1:1"))
    assert (text.exit_code, text.output) == (0, "text: 3\n")
    as_json = runner.invoke(
        answering, ["--n", "4"], obj=CliState(server="http://127.0.0.1:1", json=True)
    )
    assert as_json.output == '{"n":4,"server":"http://127.0.0.1:1"}\n'
    assert [client._session for client in opened] == [None, None]  # closed


def test_a_body_that_answers_nothing_shows_nothing() -> None:
    for as_json in (False, True):
        result = CliRunner().invoke(
            streaming, [], obj=CliState(server="http://127.0.0.1:1", json=as_json)
        )
        assert result.output == "streamed\n"


def test_the_help_is_the_body_docstring() -> None:
    result = CliRunner().invoke(answering, ["--help"])
    assert "Answers with its option" in result.output
