"""``audio-client``: the gateway from a shell.

Exit status: 0 the task completed (cancel: the task is now cancelled; status and
list: the answer was read and, for status, the task has not failed or been
cancelled); 1 the task failed or was cancelled (cancel: it had already ended); 2 a
usage error (bad arguments, or a request the API refused: unknown task, invalid input,
missing key), a connection error, or --timeout passed before the task ended.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from audio_client import output
from audio_client.client import DEFAULT_URL, Client
from audio_client.errors import AudioClientError, Conflict, WaitTimeout
from audio_client.models import PRIORITIES, STATUSES, Submission, Task
from audio_client.progress import Progress

URL_ENV = "AUDIO_API_URL"
KEY_ENV = "AUDIO_API_KEY"

OK, FAILED, USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)  # argparse exits 2 on a usage error
    url = getattr(args, "url", None) or os.environ.get(URL_ENV) or DEFAULT_URL
    key = getattr(args, "api_key", None) or os.environ.get(KEY_ENV) or None
    as_json = getattr(args, "json", False)
    try:
        with Client(url, key) as client:
            return args.run(client, args, as_json)
    except Conflict as exc:
        # Only `cancel` meets a 409: the task had already ended.
        output.error(exc, as_json)
        return FAILED
    except AudioClientError as exc:
        output.error(exc, as_json)
        return USAGE
    except OSError as exc:  # an input file that cannot be read, an -o that cannot be written
        output.note(f"error: {exc}")
        return USAGE
    except KeyboardInterrupt:
        return 130


def exit_code(task: Task) -> int:
    return FAILED if task.status in ("failed", "cancelled") else OK


# ---------------------------------------------------------------------- commands


def _transcribe(client: Client, args: argparse.Namespace, as_json: bool) -> int:
    sub = client.transcribe(args.file, **_options(args))
    return _submitted(client, sub, args, as_json)


def _tts(client: Client, args: argparse.Namespace, as_json: bool) -> int:
    sub = client.tts(args.text, **_options(args))
    return _submitted(client, sub, args, as_json, save_to=args.output)


def _summarize(client: Client, args: argparse.Namespace, as_json: bool) -> int:
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
    sub = client.summarize(text, **_options(args))
    return _submitted(client, sub, args, as_json)


def _status(client: Client, args: argparse.Namespace, as_json: bool) -> int:
    task = client.get(args.task_id)
    if as_json:
        output.emit_json(task.raw)
    else:
        output.details(task, client.base_url)
    return exit_code(task)


def _list(client: Client, args: argparse.Namespace, as_json: bool) -> int:
    page = client.list(status=args.status, limit=args.limit, cursor=args.cursor)
    if as_json:
        output.emit_json(page.raw)
    else:
        output.page(page)
    return OK


def _cancel(client: Client, args: argparse.Namespace, as_json: bool) -> int:
    task = client.cancel(args.task_id)
    if as_json:
        output.emit_json(task.raw)
    else:
        output.note(f"{task.task_id} {task.status}")
    return OK if task.status == "cancelled" else FAILED


def _watch(client: Client, args: argparse.Namespace, as_json: bool) -> int:
    return _follow(client, args.task_id, args, as_json)


def _submitted(
    client: Client,
    sub: Submission,
    args: argparse.Namespace,
    as_json: bool,
    save_to: str | None = None,
) -> int:
    if not (args.wait or save_to):
        if as_json:
            output.emit_json(sub.raw)
        else:
            output.submission(sub)
        return OK
    if not as_json:
        output.note(f"{sub.task_id}: {sub.message}")
    return _follow(client, sub.task_id, args, as_json, save_to)


def _follow(
    client: Client,
    task_id: str,
    args: argparse.Namespace,
    as_json: bool,
    save_to: str | None = None,
) -> int:
    try:
        with Progress(task_id) as progress:
            task = client.wait(task_id, timeout=args.timeout, on_update=progress.update)
    except WaitTimeout as exc:
        output.error(exc, as_json)
        return USAGE
    written = None
    if save_to and task.status == "completed":
        size = client.download(task_id, save_to)
        written = f"{save_to} ({size} bytes)"
    if as_json:
        output.emit_json(task.raw)
    else:
        output.outcome(task, client.base_url, written)
    return exit_code(task)


# ---------------------------------------------------------------------- arguments


def parser() -> argparse.ArgumentParser:
    # The connection options are accepted before and after the command; SUPPRESS keeps a
    # subcommand's unset option from hiding the one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help=f"gateway address (default: ${URL_ENV}, else {DEFAULT_URL})",
    )
    common.add_argument(
        "--api-key", default=argparse.SUPPRESS, help=f"API key (default: ${KEY_ENV})"
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the API's JSON on stdout instead of text",
    )
    top = argparse.ArgumentParser(
        prog="audio-client",
        parents=[common],
        description="Transcription, TTS and summarization through a Bittensor audio subnet.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    def submit_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--language", help="source_language (default: the gateway's, en)")
        sub.add_argument("--priority", choices=PRIORITIES, help="default: normal")
        sub.add_argument("--callback-url", help="webhook called when the task ends")
        sub.add_argument("--idempotency-key", help="the same key resubmits nothing")
        sub.add_argument("--wait", action="store_true", help="show progress, then print the result")
        wait_option(sub)

    def wait_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--timeout", type=float, help="seconds to wait for the end (default: no limit)"
        )

    sub = command("transcribe", _transcribe, "transcribe an audio file")
    sub.add_argument("file", help="WAV, MP3, FLAC, OGG, M4A or WebM")
    submit_options(sub)

    sub = command("tts", _tts, "speak a text")
    sub.add_argument("text")
    sub.add_argument("-o", "--output", help="write the WAV here (waits for the task)")
    submit_options(sub)

    sub = command("summarize", _summarize, "summarize a text file, or stdin with -")
    sub.add_argument("file", help="a UTF-8 text file, or - for stdin")
    submit_options(sub)

    sub = command("status", _status, "show a task")
    sub.add_argument("task_id")

    sub = command("list", _list, "list your tasks, newest first")
    sub.add_argument("--status", choices=STATUSES)
    sub.add_argument("--limit", type=int, help="1 to 100 (default: 10)")
    sub.add_argument("--cursor", help="the previous page's next cursor")

    sub = command("cancel", _cancel, "cancel a pending or processing task")
    sub.add_argument("task_id")

    sub = command("watch", _watch, "follow a task to its end, then print the result")
    sub.add_argument("task_id")
    wait_option(sub)
    return top


def _options(args: argparse.Namespace) -> dict:
    return {
        "language": args.language,
        "priority": args.priority,
        "callback_url": args.callback_url,
        "idempotency_key": args.idempotency_key,
    }


if __name__ == "__main__":
    sys.exit(main())
