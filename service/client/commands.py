"""The client commands of ``textbatch``: submit (and wait), batches, files, prompts, key."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console

from service.client.connection import EXIT_REFUSED, Service, api_key, fail, key_file
from service.client.progress import wait_for_batch

# Output written to stdout goes through here, so results stay bytes as the service sent them.
_stdout = sys.stdout


def _print_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _parse_metadata(pairs: tuple[str, ...]) -> dict[str, str] | None:
    if not pairs:
        return None
    metadata = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--metadata")
        metadata[key] = value
    return metadata


def _submit(
    service: Service, path: Path, metadata: dict[str, str] | None, window: str | None
) -> Any:
    body = path.read_bytes()
    if metadata is None:
        params = {"completion_window": window} if window else None
        headers = {"content-type": "application/jsonl"}
        return service.json("POST", "/v1/batches", content=body, headers=headers, params=params)
    # JSONL bodies carry no metadata: send the lines inline (held to TEXTBATCH_MAX_LINE_BYTES).
    try:
        requests = [orjson.loads(row) for row in body.splitlines() if row.strip()]
    except orjson.JSONDecodeError as exc:
        fail(f"{path}: not JSONL ({exc})", EXIT_REFUSED)
    payload: dict[str, Any] = {"requests": requests, "metadata": metadata}
    if window:
        payload["completion_window"] = window
    return service.json("POST", "/v1/batches", json=payload)


def _write(service: Service, path: str, target: Path | None) -> None:
    """Stream a JSONL download to ``target``, or to stdout, byte for byte."""
    _save(service.call("GET", path).content, target)


def _save(content: bytes, target: Path | None) -> None:
    if target is None:
        _stdout.buffer.write(content)
        _stdout.flush()
    else:
        target.write_bytes(content)


def _finish(service: Service, batch: Any, output: Path | None, errors: Path | None) -> None:
    _write(service, f"/v1/batches/{batch['id']}/output", output)
    if errors is not None:
        error_file = batch.get("error_file_id")
        if error_file:
            _write(service, f"/v1/files/{error_file}/content", errors)
        else:
            errors.write_bytes(b"")


@click.command("submit", help="[client] submit a JSONL file as a batch; print its id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--wait", is_flag=True, help="show progress until it finishes, then fetch results")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="results file (with --wait; default stdout)",
)
@click.option(
    "--errors",
    type=click.Path(dir_okay=False, path_type=Path),
    help="failed lines file (with --wait)",
)
@click.option("--metadata", multiple=True, metavar="KEY=VALUE", help="batch metadata (repeatable)")
@click.option("--completion-window", help="e.g. 24h (at most 168h)")
def submit(
    file: Path,
    wait: bool,
    output: Path | None,
    errors: Path | None,
    metadata: tuple[str, ...],
    completion_window: str | None,
) -> None:
    """Exit 0 when every line succeeded, 1 when some failed, 2 when refused, 3 unreachable."""
    if (output or errors) and not wait:
        raise click.UsageError("--output and --errors need --wait")
    console = Console(stderr=True)
    with Service() as service:
        batch = _submit(service, file, _parse_metadata(metadata), completion_window)
        if not wait:
            click.echo(batch["id"])
            return
        console.print(f"Submitted {batch['id']} ({batch['request_counts']['total']} lines)")
        batch = wait_for_batch(service, batch, console)
        counts = batch["request_counts"]
        stopped = "".join(
            f", {counts[name]} {name}" for name in ("cancelled", "expired") if counts.get(name)
        )
        console.print(
            f"{batch['id']} {batch['status']}: {counts['completed']} succeeded, "
            f"{counts['failed']} failed{stopped} of {counts['total']}"
        )
        if batch["status"] == "failed":
            for fault in (batch.get("errors") or {}).get("data", []):
                console.print(f"  line {fault.get('line')}: {fault.get('message')}")
            raise SystemExit(1)
        _finish(service, batch, output, errors)
    if counts["completed"] != counts["total"]:
        raise SystemExit(1)


@click.group("batches", help="[client] list, show, cancel batches and fetch their output")
def batches() -> None:
    pass


@batches.command("list", help="your batches, newest first")
@click.option("--limit", type=int, default=20, show_default=True)
def batches_list(limit: int) -> None:
    with Service() as service:
        page = service.json("GET", "/v1/batches", params={"limit": limit})
    for batch in page["data"]:
        counts = batch["request_counts"]
        click.echo(
            f"{batch['id']}  {batch['status']:<11} {counts['completed']}/{counts['total']} done"
            f" {counts['failed']} failed"
        )


@batches.command("show", help="a batch as JSON")
@click.argument("batch_id")
def batches_show(batch_id: str) -> None:
    with Service() as service:
        _print_json(service.json("GET", f"/v1/batches/{batch_id}"))


@batches.command("cancel", help="stop a batch; finished lines are kept")
@click.argument("batch_id")
def batches_cancel(batch_id: str) -> None:
    with Service() as service:
        batch = service.json("POST", f"/v1/batches/{batch_id}/cancel")
    click.echo(f"{batch['id']} {batch['status']}")


def _retries(service: Service, batch_id: str) -> list[str]:
    """Every retry of the batch, and retries of those, as its ``retried_by`` lists name them."""
    found: list[str] = []
    waiting = list(service.json("GET", f"/v1/batches/{batch_id}").get("retried_by") or [])
    while waiting:
        retry_id = waiting.pop(0)
        if retry_id not in found:
            found.append(retry_id)
            waiting += service.json("GET", f"/v1/batches/{retry_id}").get("retried_by") or []
    return found


@click.command("output", help="[client] a finished batch's result lines (JSONL)")
@click.argument("batch_id")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="default stdout")
@click.option("--merged", is_flag=True, help="with its retries: each line's newest result")
def output(batch_id: str, output: Path | None, merged: bool) -> None:
    with Service() as service:
        params = {"merged_with": _retries(service, batch_id)} if merged else None
        content = service.call("GET", f"/v1/batches/{batch_id}/output", params=params).content
    _save(content, output)


batches.add_command(output)


@batches.command("retry", help="run a finished batch's failed lines again; print the new id")
@click.argument("batch_id")
@click.option("--code", "codes", multiple=True, help="only lines failed with this error code")
def batches_retry(batch_id: str, codes: tuple[str, ...]) -> None:
    with Service() as service:
        payload = {"codes": list(codes)} if codes else None
        retry = service.json("POST", f"/v1/batches/{batch_id}/retry", json=payload)
    click.echo(retry["id"])


@click.group("files", help="[client] upload, list, show, download and delete files")
def files() -> None:
    pass


@files.command("upload", help="upload a JSONL file for a batch; print its id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def files_upload(file: Path) -> None:
    with Service() as service, file.open("rb") as handle:
        uploaded = service.json(
            "POST", "/v1/files", data={"purpose": "batch"}, files={"file": (file.name, handle)}
        )
    click.echo(uploaded["id"])


@files.command("list", help="your files")
def files_list() -> None:
    with Service() as service:
        page = service.json("GET", "/v1/files")
    for item in page["data"]:
        click.echo(f"{item['id']}  {item['purpose']:<12} {item['bytes']:>10} B  {item['filename']}")


@files.command("show", help="a file's record as JSON")
@click.argument("file_id")
def files_show(file_id: str) -> None:
    with Service() as service:
        _print_json(service.json("GET", f"/v1/files/{file_id}"))


@files.command("content", help="a file's content")
@click.argument("file_id")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="default stdout")
def files_content(file_id: str, output: Path | None) -> None:
    with Service() as service:
        _write(service, f"/v1/files/{file_id}/content", output)


@files.command("delete", help="delete a file")
@click.argument("file_id")
def files_delete(file_id: str) -> None:
    with Service() as service:
        service.call("DELETE", f"/v1/files/{file_id}")
    click.echo(f"{file_id} deleted")


@click.group("prompts", help="[client] store, list, show and delete prompt templates")
def prompts() -> None:
    pass


@prompts.command("create", help="store a prompt from a JSON file (slug, messages, settings)")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def prompts_create(file: Path) -> None:
    with Service() as service:
        created = service.json(
            "POST",
            "/v1/prompts",
            content=file.read_bytes(),
            headers={"content-type": "application/json"},
        )
    click.echo(created["slug"])


@prompts.command("list", help="your prompts")
def prompts_list() -> None:
    with Service() as service:
        page = service.json("GET", "/v1/prompts")
    for item in page["data"]:
        click.echo(f"{item['slug']}  published v{item.get('published_version')}")


@prompts.command("show", help="a prompt with every version, as JSON")
@click.argument("slug")
def prompts_show(slug: str) -> None:
    with Service() as service:
        _print_json(service.json("GET", f"/v1/prompts/{slug}"))


@prompts.command("delete", help="delete a prompt and every version")
@click.argument("slug")
def prompts_delete(slug: str) -> None:
    with Service() as service:
        service.call("DELETE", f"/v1/prompts/{slug}")
    click.echo(f"{slug} deleted")


@click.command("key", help="[client] print the API key the service generated")
def key() -> None:
    api_key()  # fails with a clear message when there is none
    click.echo(key_file().read_text(encoding="utf-8").strip())


def add_client_commands(group: click.Group) -> None:
    for command in (submit, output, batches, files, prompts, key):
        group.add_command(command)
