"""The ``hpsearch`` command line: thin click commands over library calls.

Every command goes through :mod:`hpsearch.api` (or, to serve the dashboard or write a
report, the task that does it); the lines they print are formatted in
:mod:`hpsearch.report.console`. Exit codes mean something: 0 done, 1 a failure (a crash,
a database that stays away), 2 bad input (a study file, a name, an option), with the field
and the fix in the message. The floors below are imported inside the commands that use
them (reports, training, Optuna, SQLAlchemy), so ``hpsearch --help`` and validation errors
answer instantly.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from hpsearch import api, examples
from hpsearch.core.errors import EXIT_BAD_INPUT, UserError
from hpsearch.core.failures import format_stop
from hpsearch.objectives.catalog import load_spec
from hpsearch.store.policy import StorageBroken, StorageUnusable, sqlalchemy_error
from hpsearch.store.urls import check_url, mask_text, mask_url, resolve_url, url_source

STORAGE_HELP = "Storage URL (default: $HPSEARCH_STORAGE, else sqlite:///hpsearch.db here)."
DEVICE_HELP = "auto (CUDA if there), cpu, cuda, cuda:N or mps."
#: Where the command's storage URL is kept (``ctx.meta``) so that errors mask it.
URL_KEY = "hpsearch.storage_url"
#: Set in ``ctx.meta`` by ``-q``: print errors and the final answer only.
QUIET_KEY = "hpsearch.quiet"


def quiet() -> bool:
    """``-q`` was given: a command prints errors and its final answer, nothing else."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(QUIET_KEY))


def say(message: str) -> None:
    """A line of what a command is doing (standard error), left out under ``-q``."""
    if not quiet():
        click.echo(message, err=True)


class BadInput(click.ClickException):
    """A user error: printed without a traceback, exit code 2."""

    exit_code = EXIT_BAD_INPUT

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def masked(text: str) -> str:
    """``text`` without the password of this command's storage URL (or any URL's)."""
    ctx = click.get_current_context(silent=True)
    return mask_text(text, ctx.meta.get(URL_KEY) if ctx is not None else None)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's input errors into exit code 2 with their message."""
    try:
        yield
    except UserError as exc:
        raise BadInput(masked(str(exc))) from exc


def storage_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--storage", default=None, metavar="URL", help=STORAGE_HELP)(fn)


def max_failures_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--max-failures",
        default=None,
        type=click.IntRange(0),
        metavar="N",
        help="Stop the search after N failed trials with no success in a stage "
        "(default: the study file's max_failures, else 3; 0: never stop).",
    )(fn)


def discard_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--yes", is_flag=True, help="Discard without asking (--from-stage).")(fn)
    return click.option(
        "--from-stage",
        default=None,
        metavar="S",
        help="Discard stage S and later ones and prepare them afresh from the retried results.",
    )(fn)


def threads_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--threads",
        default=None,
        type=click.IntRange(1),
        help="CPU threads per worker (default: this machine's cores split between workers).",
    )(fn)


def progress_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--progress/--no-progress",
        default=True,
        help="Show progress per stage (a bar on a terminal, else a line now and then).",
    )(fn)


def gpus_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--gpus-per-worker",
        default=1,
        show_default=True,
        type=click.IntRange(1),
        help="GPUs each local worker gets (CUDA_VISIBLE_DEVICES, round-robin over the "
        "visible ones) with --device cuda or auto.",
    )(fn)


def storage_url(storage: str | None, *, creates: bool = False) -> str:
    """The command's storage URL (``--storage``, ``$HPSEARCH_STORAGE`` or the default),
    refused with the fix before anything connects when it cannot work; ``creates``: the
    command makes the database if it is not there."""
    url = resolve_url(storage)
    click.get_current_context().meta[URL_KEY] = url
    with user_errors():
        check_url(url, creates=creates, source=url_source(storage))
    return url


class DeviceType(click.ParamType):
    """``--device``, checked as a ``click.Choice`` is, with torch's ``cuda:N`` for one GPU
    of several (a pattern, which ``click.Choice`` cannot hold)."""

    name = "device"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        from hpsearch.training.config import DEVICES

        return f"[{'|'.join(DEVICES)}]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from hpsearch.training.config import DEVICE

        if not DEVICE.is_satisfied_by(value):
            self.fail(f"{value!r} is not {DEVICE}.", param, ctx)
        return value


def device_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--device", default="auto", show_default=True, type=DeviceType(), help=DEVICE_HELP
    )(fn)


class Group(click.Group):
    """Database errors become one clean line with the URL's password masked: exit 2 for a
    storage URL that cannot be used at all, 1 for a database that cannot be reached."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if isinstance(exc, StorageBroken):
                raise click.ClickException(str(exc)) from exc
            error = sqlalchemy_error(exc, masked)
            if error is None:
                raise
            if isinstance(error, StorageUnusable):
                raise BadInput(str(error)) from exc
            raise click.ClickException(str(error)) from exc


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """``-v`` (info), ``-vv`` (debug), ``-q`` (errors only), before or after the command."""
    _log_format()
    if value:
        level = (
            logging.ERROR
            if param.name == "quiet"
            else (logging.INFO, logging.DEBUG)[min(value, 2) - 1]
        )
        logging.getLogger().setLevel(level)
        if param.name == "quiet":
            ctx.meta[QUIET_KEY] = True
    return value


def _log_format() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )


def verbosity_options(fn: Any) -> Any:
    fn = click.option(
        "-q", "--quiet", is_flag=True, expose_value=False, callback=_set_verbosity,
        help="Errors only.",
    )(fn)  # fmt: skip
    return click.option(
        "-v", "--verbose", count=True, expose_value=False, callback=_set_verbosity,
        help="More logging (-v info, -vv debug).",
    )(fn)  # fmt: skip


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@verbosity_options
@click.version_option(package_name="hpsearch")
def main() -> None:
    """Coarse-to-fine hyperparameter search on Optuna storage.

    Write a study file (`hpsearch example` lists examples to start from), then
    `hpsearch launch FILE`.
    """
    _log_format()


@main.command()
@click.argument("name", required=False)
def example(name: str | None) -> None:
    """List the example study files, or print example NAME (TOML) to standard output.

    \b
    hpsearch example quickstart > quickstart.toml && hpsearch launch quickstart.toml
    """
    with user_errors():
        if name is not None:
            click.echo(examples.read(name), nl=False)
            return
        width = max(map(len, examples.names()))
        for n in examples.names():
            click.echo(f"{n:<{width}}  {examples.summary(n)}")
    click.echo("\nhpsearch example NAME > NAME.toml writes one out to edit and launch.", err=True)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@storage_option
@device_option
@click.option(
    "--grace-period",
    default=60,
    show_default=True,
    type=click.IntRange(2),
    help="Seconds without a heartbeat before a worker's trial is re-queued.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Local worker processes (the cores are split between them).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Validate, import the objective (the built-in: load its data) and print the plan; "
    "run nothing.",
)
@max_failures_option
@click.option(
    "--retry-failed", is_flag=True, help="Re-queue failed trials first (as hpsearch retry)."
)
@discard_options
@threads_option
@progress_option
@gpus_option
def launch(
    file: str,
    storage: str | None,
    device: str,
    grace_period: int,
    workers: int,
    dry_run: bool,
    max_failures: int | None,
    retry_failed: bool,
    from_stage: str | None,
    yes: bool,
    threads: int | None,
    progress: bool,
    gpus_per_worker: int,
) -> None:
    """Run the search in FILE to the end (launching it again resumes, and runs again the
    trials of a search stopped on failures)."""
    from hpsearch.report.console import format_closing, format_launched
    from hpsearch.report.terminal import failures_warning, format_summary

    with user_errors():
        spec = load_spec(file)
        if from_stage is not None and not retry_failed:
            raise BadInput("--from-stage applies with --retry-failed (or hpsearch retry)")
    url = storage_url(storage, creates=True)
    with user_errors():
        if dry_run:
            click.echo(api.dry_run(spec, device, url=url, workers=workers, source=file))
            return
        spec, registered, _ = api.register(spec, url, workers=workers, source=file)
        for line in registered.changes:
            say(f"edited search {spec.name}: {line}")
        for note in registered.notes:
            say(f"note: {note}")
        if retry_failed:
            for line in api.retry(url, spec, from_stage=from_stage, confirm=_asker(yes)):
                say(line)
        for line in api.resume(url, spec):
            say(line)
    say(format_launched(spec, registered.new, url))
    limit = spec.max_failures if max_failures is None else max_failures  # the file's
    options = api.RunOptions(
        workers, device, threads, grace_period, gpus_per_worker, limit, progress and not quiet()
    )
    _run(url, spec.name, options)
    view = api.Search(spec.name, url).view()
    if not quiet():
        # the report, then a warning grouping the failed trials that did not stop the
        # search: the exit code stays 0, as the search finished (README)
        click.echo(format_summary(view))
        warning = failures_warning(view)
        if warning is not None:
            click.echo(warning, err=True)
    click.echo(("" if quiet() else "\n") + format_closing(view, url))


def _asker(yes: bool) -> Callable[[str], None] | None:
    """Ask before a retry discards anything, refusing with no terminal to ask on (None
    with --yes: nothing is asked)."""
    if yes:
        return None

    def ask(question: str) -> None:
        if not sys.stdin.isatty():
            raise BadInput(f"{question}\nno terminal to ask on: pass --yes")
        if not click.confirm(question):
            raise click.Abort()

    return ask


@main.command()
@click.argument("name")
@storage_option
@threads_option
@device_option
@click.option("--grace-period", default=60, show_default=True, type=click.IntRange(2))
@progress_option
@max_failures_option
# Workers started by `launch --workers N` leave the stop's summary to the launcher (once).
@click.option("--stop-summary/--no-stop-summary", default=True, hidden=True)
def worker(
    name: str,
    storage: str | None,
    threads: int | None,
    device: str,
    grace_period: int,
    progress: bool,
    max_failures: int | None,
    stop_summary: bool,
) -> None:
    """Work on search NAME until it is finished (run on as many machines as you like).

    The storage URL is best given in $HPSEARCH_STORAGE, which keeps a password out of
    process lists. SIGTERM (as Slurm and Kubernetes send) and Ctrl-C re-queue the running
    trial before the worker exits. A search stopped on failures stays stopped (exit 1)
    until it is launched again or retried.
    """
    options = api.RunOptions(1, device, threads, grace_period, 1, max_failures, progress)
    _run(storage_url(storage), name, options, stop_summary=stop_summary)


def _run(url: str, key: str, options: api.RunOptions, *, stop_summary: bool = True) -> None:
    """Work on ``key`` (a search or a baseline) until it is done, through ``api.run``;
    exit 130 when interrupted, 1 when the search stopped on failures (its summary, read
    from the database, once) or could not complete."""
    from hpsearch.report.console import format_worker_done

    with user_errors():
        outcome = api.run(url, key, options, stop_on_signals=True)
    if outcome.code == 130:
        click.echo(
            "\ninterrupted: running trials were re-queued; launch again to resume", err=True
        )
        sys.exit(130)
    if outcome.stats is not None and stop_summary and not quiet():  # launched: the launcher's
        click.echo(format_worker_done(outcome.stats), err=True)
    if outcome.stopped is not None:
        if stop_summary:
            click.echo(format_stop(key.split("/")[0], *outcome.stopped), err=True)
        sys.exit(1)
    if outcome.code:
        sys.exit(outcome.code)


@main.command()
@click.argument("name")
@storage_option
def status(name: str, storage: str | None) -> None:
    """Progress of search NAME: trials done per stage, best so far."""
    url = storage_url(storage)
    with user_errors():
        click.echo(api.Search(name, url).status())


@main.command()
@click.argument("name")
@storage_option
@click.option("--html", default=None, metavar="PATH", help="Write a self-contained HTML report.")
@click.option(
    "--csv", "csv_path", default=None, metavar="PATH", help="Write one row per trial (-: stdout)."
)
@click.option("--json", "json_path", default=None, metavar="PATH", help="Same rows, with curves.")
@click.option(
    "--parquet", default=None, metavar="PATH", help="Same rows as Parquet (needs pyarrow)."
)
@click.option(
    "--importance",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "fanova", "ped-anova"]),
    help="Optuna's importance evaluator (auto: fANOVA up to 100 trials a stage, else PED-ANOVA).",
)
def report(
    name: str,
    storage: str | None,
    html: str | None,
    csv_path: str | None,
    json_path: str | None,
    parquet: str | None,
    importance: str,
) -> None:
    """What search NAME found: per stage the best trials, the parameters that mattered, the
    promising region and what to change; works while workers run.

    A table written to standard output (``--csv -``) leaves it to the table alone: the
    report text then goes to standard error."""
    from hpsearch.report.build import ReportConfig, make_report

    # Asked for files: a line for each says where it went, not the whole report again;
    # -q: the final answer alone.
    asked = [p for p in (html, csv_path, json_path, parquet) if p is not None]
    config = ReportConfig(
        storage_url(storage),
        name,
        html=html,
        csv=csv_path,
        json=json_path,
        parquet=parquet,
        evaluator=importance,
        text="none" if asked else ("answer" if quiet() else "full"),
    )
    with user_errors():
        text, wrote = make_report(config)
    if text:
        click.echo(text)
    for line in wrote:
        click.echo(line, err="-" in asked)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@storage_option
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1), help="Local workers."
)
@device_option
@click.option("--grace-period", default=60, show_default=True, type=click.IntRange(2))
@gpus_option
def compare(
    file: str,
    storage: str | None,
    workers: int,
    device: str,
    grace_period: int,
    gpus_per_worker: int,
) -> None:
    """Run the search in FILE, then flat grid and random search with the same epoch budget
    (NAME/grid-baseline, NAME/random-baseline), and compare the three (reruns resume)."""
    with user_errors():
        spec = load_spec(file)
    url = storage_url(storage, creates=True)
    with user_errors():
        keys = api.register_baselines(url, spec, source=file)
    for key in keys:
        click.echo(f"running {key}", err=True)
        _run(url, key, api.RunOptions(workers, device, None, grace_period, gpus_per_worker))
    click.echo(api.comparison(url, spec.name))


@main.command()
@click.argument("name")
@storage_option
@click.option("--stage", default=None, metavar="S", help="The best of stage S only.")
@click.option(
    "--format",
    "fmt",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json", "toml"]),
    help="toml: a [fixed] table to paste into a study file.",
)
@click.option("--retrain", is_flag=True, help="Train the winner once more (nothing is stored).")
@click.option(
    "--epochs", default=None, type=click.IntRange(1), help="With --retrain: epochs to train."
)
@click.option(
    "--save", default=None, metavar="PATH", help="With --retrain: write the trained model here."
)
@click.option(
    "--device",
    default=None,
    type=click.Choice(["auto", "cpu", "cuda"]),
    help="With --retrain: where to train (default: where the trial ran).",
)
@click.option(
    "--threads",
    default=None,
    type=click.IntRange(1),
    help="With --retrain: CPU threads (default: the trial's).",
)
def best(
    name: str,
    storage: str | None,
    stage: str | None,
    fmt: str,
    retrain: bool,
    epochs: int | None,
    save: str | None,
    device: str | None,
    threads: int | None,
) -> None:
    """The configuration search NAME recommends: the best trial among its longest runs,
    with every parameter ([fixed] too), its seed and the data split seed, at full
    precision. --retrain trains it again and checks the value comes back."""
    from hpsearch.report.console import storage_flag
    from hpsearch.tasks import best as winners

    if not retrain:
        for option, given in (
            ("--epochs", epochs),
            ("--save", save),
            ("--device", device),
            ("--threads", threads),
        ):
            if given is not None:
                raise BadInput(f"{option} only applies with --retrain")
    elif fmt == "toml":
        raise BadInput("--retrain reports in text or json; --format toml prints the winner")
    url = resolve_url(storage)
    with user_errors():
        view = api.Search(name, url).view()
        winner = winners.find_winner(view, stage)
        if not retrain:
            click.echo(winners.format_winner(winner, fmt, storage_flag(url)))
            return
        from hpsearch.tasks import retrain as retraining  # torch: only when retraining

        click.echo(
            f"retraining trial {winner.record.number} of {name} (stage {winner.record.stage})",
            err=True,
        )
        try:
            done = retraining.retrain(
                view.spec, winner, epochs=epochs, save=save, threads=threads, device=device
            )
        except retraining.RetrainFailed as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(retraining.format_retrained(done, fmt))
    if done.reproduced is False:
        click.echo(f"warning: {retraining.NOT_REPRODUCED}", err=True)


GRACE_HELP = "Seconds without a heartbeat before a worker counts as gone (as for launch)."


@main.command(name="list")
@storage_option
@click.option(
    "--grace-period", default=60, show_default=True, type=click.IntRange(2), help=GRACE_HELP
)
def list_(storage: str | None, grace_period: int) -> None:
    """Every search in the storage: stages, trials done, state, best value."""
    url = resolve_url(storage)
    with user_errors():
        click.echo(api.list_searches(url, grace_period))


@main.command()
@click.argument("name")
@storage_option
@click.option("--yes", is_flag=True, help="Do not ask (needed without a terminal).")
@click.option("--force", is_flag=True, help="Delete even while a worker's heartbeat is fresh.")
@click.option(
    "--grace-period", default=60, show_default=True, type=click.IntRange(2), help=GRACE_HELP
)
def delete(name: str, storage: str | None, yes: bool, force: bool, grace_period: int) -> None:
    """Delete search NAME: every stage study and compare baseline, in one transaction.

    Launching its study file again then starts it afresh.
    """
    url = resolve_url(storage)

    def ask(studies: list[str]) -> None:
        if not sys.stdin.isatty():
            raise BadInput(
                f"delete {name}: no terminal to ask on; pass --yes to delete without asking"
            )
        click.confirm(
            f"delete search {name} from {mask_url(url)} ({', '.join(studies)})?", abort=True
        )

    with user_errors():
        deleted = api.delete(
            url, name, grace_period=grace_period, force=force, confirm=None if yes else ask
        )
    click.echo(f"deleted search {name}: {', '.join(deleted)}", err=True)


@main.command()
@click.argument("name")
@storage_option
@click.option("--stage", default=None, metavar="S", help="Retry only this stage's failures.")
@discard_options
def retry(
    name: str, storage: str | None, stage: str | None, from_stage: str | None, yes: bool
) -> None:
    """Re-queue the failed trials of search NAME with their params (after fixing what made
    them fail) and lift a stop on failures; launching again then runs them."""
    url = resolve_url(storage)
    with user_errors():
        spec = api.find_search(url, name)
        for line in api.retry(url, spec, stage=stage, from_stage=from_stage, confirm=_asker(yes)):
            click.echo(line)
    from hpsearch.report.console import storage_flag
    from hpsearch.tasks.manage import study_files_named

    flag, files = storage_flag(url), study_files_named(name)
    again = f"hpsearch launch {files[0]}{flag}" if files else "hpsearch launch on its study file"
    say(f"launch again to run them: {again} (or hpsearch worker {name}{flag})")


@main.command()
@storage_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="0: any."
)
@click.option(
    "--allow-writes",
    is_flag=True,
    help="Let the dashboard edit notes, tell trials and delete studies (read-only otherwise).",
)
def dashboard(storage: str | None, host: str, port: int, allow_writes: bool) -> None:
    """Review searches in optuna-dashboard (read-only, this machine only, by default)."""
    from hpsearch.tasks.dashboard import DashboardConfig, is_loopback, serve  # loads Optuna

    url = storage_url(storage)
    if not is_loopback(host):
        click.echo(
            f"warning: serving on {host}: anyone who can reach this address sees every study "
            "in the storage (optuna-dashboard has no authentication)",
            err=True,
        )
    mode = "read-write" if allow_writes else "read-only; --allow-writes to edit"

    def ready(address: str) -> None:
        click.echo(f"optuna-dashboard on {mask_url(url)} ({mode}): {address}", err=True)
        click.echo("press Ctrl-C to stop", err=True)

    with user_errors():
        serve(DashboardConfig(url, host, port, allow_writes), on_ready=ready)


# -q and -v work the same on every command (and before it: hpsearch -v launch ...).
for _command in main.commands.values():
    verbosity_options(_command)

if __name__ == "__main__":
    main()
