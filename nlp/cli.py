"""The ``train``, ``evaluate`` and ``analyze`` commands.

``main.py`` calls :func:`register` with its Typer app and its settings loader. Errors reach the
person as one plain sentence and exit code 2; ``--json`` prints exactly one JSON object on standard
output (progress and messages go to standard error).
"""

import dataclasses
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from nlp.classify import TASKS, Metrics, ModelFormatError, ModelStore, ProgressCallback
from nlp.pipeline import PipelineError

if TYPE_CHECKING:
    from settings import Settings

logger = logging.getLogger(__name__)

CorrectionsLoader = Callable[["Settings"], list[tuple[str, str]]]


class TaskName(StrEnum):
    category = "category"
    sentiment = "sentiment"


assert tuple(t.value for t in TaskName) == TASKS  # noqa: S101 - keep the two lists in step


def _fail(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True, soft_wrap=True).print(f"[bold red]Error:[/] {message}", highlight=False)
    raise typer.Exit(code=code)


@contextmanager
def _friendly_errors() -> Iterator[None]:
    """Known problems become one sentence and exit code 2; nothing prints a traceback."""
    from nlp.knowledge import KnowledgeBaseError
    from nlp.training import TrainingDataError

    try:
        yield
    except typer.Exit:
        raise
    except (TrainingDataError, PipelineError, ModelFormatError, KnowledgeBaseError) as exc:
        _fail(str(exc))
    except ValueError as exc:  # e.g. an order-number pattern that is not a valid expression
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    except Exception as exc:
        logger.debug("unexpected error", exc_info=True)
        _fail(f"unexpected problem ({type(exc).__name__}: {exc})", code=1)


@contextmanager
def _progress(description: str, enabled: bool = True) -> Iterator[ProgressCallback]:
    """A Rich progress bar on standard error, driven by ``(stage, fraction)`` callbacks."""
    console = Console(stderr=True)
    if not enabled:
        yield lambda _s, _f: None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[stage]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task_id = progress.add_task(description, total=1.0, stage="")

        def update(stage: str, fraction: float) -> None:
            progress.update(task_id, completed=min(1.0, max(0.0, fraction)), stage=stage)

        yield update


def _metrics_table(title: str, metrics: Metrics) -> Table:
    table = Table(title=title, show_header=True)
    table.add_column("label")
    table.add_column("precision", justify="right")
    table.add_column("recall", justify="right")
    table.add_column("F1", justify="right")
    table.add_column("support", justify="right")
    for label in metrics.labels:
        row = metrics.per_class[label]
        table.add_row(
            label,
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(int(row["support"])),
        )
    return table


def _summary_lines(metrics: Metrics) -> list[str]:
    lines = [
        f"accuracy            {metrics.accuracy:.4f}",
        f"macro-F1            {metrics.macro_f1:.4f}",
    ]
    if metrics.in_scope_accuracy is not None:
        lines.append(f"in-scope accuracy   {metrics.in_scope_accuracy:.4f}")
    if metrics.out_of_scope_recall is not None:
        lines.append(f"out-of-scope recall {metrics.out_of_scope_recall:.4f}")
    lines.append(f"rows                {metrics.n}")
    return lines


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def draw_confusion(metrics: Metrics, path: Path, title: str = "Confusion matrix") -> Path:
    """Save the confusion matrix (rows: true labels, columns: predictions) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = list(metrics.labels)
    counts = np.asarray(metrics.confusion, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    size = max(5.0, 0.32 * len(labels) + 3)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8 if len(labels) > 20 else 10)
    ax.set_yticks(range(len(labels)), labels, fontsize=8 if len(labels) > 20 else 10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                if counts[i, j]:
                    colour = "white" if share[i, j] > 0.5 else "black"
                    ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true label")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def register(
    app: typer.Typer,
    settings_factory: Callable[[], "Settings"],
    corrections_loader: CorrectionsLoader | None = None,
) -> None:
    """Add ``train``, ``evaluate`` and ``analyze`` to ``app``."""

    @app.command("train")
    def train_command(
        data: Annotated[
            Path | None, typer.Option("--data", help="CSV file with a header row.")
        ] = None,
        validation: Annotated[
            Path | None,
            typer.Option(
                "--validation",
                help="CSV file to tune on (default: a stratified part of --data).",
            ),
        ] = None,
        text_column: Annotated[str, typer.Option("--text-column")] = "text",
        label_column: Annotated[str, typer.Option("--label-column")] = "label",
        task: Annotated[TaskName, typer.Option("--task")] = TaskName.category,
        from_corrections: Annotated[
            bool,
            typer.Option(
                "--from-corrections",
                help="Add agents' category corrections; the new model replaces the current one "
                "only if it is not worse on held-out data.",
            ),
        ] = False,
        default: Annotated[
            bool,
            typer.Option("--default", help="Retrain the default model from Kefu's own examples."),
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """Train a model and make it current (rows labelled `other` are out-of-scope examples).

        The running bot picks the new model up without a restart. A bad file changes nothing.
        """
        from nlp import training

        with _friendly_errors():
            settings = settings_factory()
            models_dir = Path(settings.models_dir)
            if from_corrections:
                _train_from_corrections(
                    settings,
                    models_dir=models_dir,
                    data=data,
                    text_column=text_column,
                    label_column=label_column,
                    task=task.value,
                    as_json=as_json,
                    loader=corrections_loader,
                )
                return
            if data is None and not default:
                _fail("give the training data with --data FILE.csv (or use --default)")
            if data is not None:
                examples = training.read_examples(
                    data, text_column=text_column, label_column=label_column
                )
                source, data_path = "file", str(data)
            else:
                examples = training.default_examples(task.value)
                source, data_path = "default", training.DEFAULT_DATA[task.value].name
            val_examples = (
                training.read_examples(
                    validation, text_column=text_column, label_column=label_column
                )
                if validation is not None
                else None
            )
            training.check_examples(examples, task.value)
            pipelines = _pipelines(settings)
            with _progress(f"Training {task.value}") as progress:
                result = training.train(
                    examples,
                    task=task.value,
                    models_dir=models_dir,
                    validation=val_examples,
                    pipelines=pipelines,
                    progress=progress,
                    source=source,
                    data_path=data_path,
                )
            summary = result.validation.summary() if result.validation else None
            if as_json:
                _print_json(
                    {
                        "task": result.task,
                        "version": result.version,
                        "path": str(result.path),
                        "labels": list(result.labels),
                        "n_train": result.n_train,
                        "n_validation": result.n_validation,
                        "seconds": round(result.seconds, 2),
                        "validation": summary,
                    }
                )
                return
            console = Console()
            console.print(
                f"Trained {result.task} model [bold]{result.version}[/] on {result.n_train} rows "
                f"in {result.seconds:.1f} s; it is now the current model ({result.path})."
            )
            if result.validation:
                console.print(f"Validation ({result.n_validation} rows):")
                for line in _summary_lines(result.validation):
                    console.print("  " + line)
                console.print(_metrics_table("Validation per class", result.validation))

    @app.command("evaluate")
    def evaluate_command(
        data: Annotated[Path, typer.Option("--data", help="Labelled CSV file with a header row.")],
        text_column: Annotated[str, typer.Option("--text-column")] = "text",
        label_column: Annotated[str, typer.Option("--label-column")] = "label",
        task: Annotated[TaskName, typer.Option("--task")] = TaskName.category,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        confusion: Annotated[
            Path | None, typer.Option("--confusion", help="Draw the confusion matrix to a PNG.")
        ] = None,
    ) -> None:
        """Score the current model on labelled data: accuracy, macro-F1, per-class precision and
        recall, and with `other` rows in-scope accuracy and out-of-scope recall."""
        from nlp import training

        with _friendly_errors():
            settings = settings_factory()
            examples = training.read_examples(
                data, text_column=text_column, label_column=label_column
            )
            pipelines = _pipelines(settings)
            store = ModelStore(Path(settings.models_dir))
            if store.current_version(task.value) is None:
                Console(stderr=True).print(
                    f"No {task.value} model yet: training the default one first."
                )
                training.train_default(task.value, models_dir=store.models_dir, pipelines=pipelines)
            classifier, meta = store.load(task.value)
            unknown = sorted({e.label for e in examples} - set(classifier.labels))
            if unknown:
                Console(stderr=True).print(
                    "[yellow]Note:[/] labels the model does not know (always counted wrong): "
                    + ", ".join(unknown[:10])
                    + (" ..." if len(unknown) > 10 else "")
                )
            with _progress(f"Evaluating {task.value}", enabled=True) as progress:
                metrics = training.evaluate(
                    classifier, examples, pipelines=pipelines, progress=progress
                )
            if confusion is not None:
                draw_confusion(
                    metrics, confusion, title=f"{task.value} model {meta.get('version')}"
                )
            if as_json:
                _print_json(
                    {
                        **metrics.summary(),
                        "n": metrics.n,
                        "task": task.value,
                        "model_version": meta.get("version"),
                        "per_class": metrics.per_class,
                    }
                )
                return
            console = Console()
            console.print(f"{task.value} model {meta.get('version')} on {data}:")
            for line in _summary_lines(metrics):
                console.print("  " + line)
            console.print(_metrics_table("Per class", metrics))
            if confusion is not None:
                console.print(f"Confusion matrix written to {confusion}")

    @app.command("analyze")
    def analyze_command(
        text: Annotated[str, typer.Argument(help="The message to analyse.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        repeated_contact: Annotated[
            int, typer.Option("--repeated-contact", help="Earlier contacts about the same issue.")
        ] = 0,
    ) -> None:
        """Analyse one message: language, category, sentiment, urgency, entities, summary."""
        from nlp.analysis import Analyzer

        with _friendly_errors():
            settings = settings_factory()
            analyzer = Analyzer(
                models_dir=Path(settings.models_dir),
                pipeline_name=settings.nlp_pipeline,
                order_pattern=settings.order_number_pattern,
            )
            result = analyzer.analyze(text, repeated_contact=repeated_contact)
            data = dataclasses.asdict(result)
            if as_json:
                _print_json(data)
                return
            table = Table(show_header=False)
            table.add_column("field", style="bold")
            table.add_column("value")
            table.add_row("language", result.language)
            table.add_row("category", f"{result.category} ({result.category_confidence:.0%})")
            table.add_row(
                "sentiment", f"{result.sentiment.value} ({result.sentiment_confidence:.0%})"
            )
            reasons = ", ".join(result.urgency_reasons)
            table.add_row("urgency", result.urgency.value + (f" ({reasons})" if reasons else ""))
            table.add_row(
                "entities",
                "\n".join(f"{e.label}: {e.text}" for e in result.entities) or "-",
            )
            table.add_row("summary", result.summary or "-")
            table.add_row("key phrases", ", ".join(result.key_phrases) or "-")
            Console().print(table)


def _pipelines(settings: "Settings") -> Any:
    from nlp.pipeline import Pipelines

    return Pipelines(
        pipeline_name=settings.nlp_pipeline, order_pattern=settings.order_number_pattern
    )


def _current_source(models_dir: Path, task: str) -> str | None:
    """Where the current model's training data came from (``default``, ``corrections``, a file)."""
    from nlp.classify import ModelFormatError, ModelStore

    store = ModelStore(models_dir)
    if store.current_version(task) is None:
        return None
    try:
        _, meta = store.load(task)
    except ModelFormatError:
        return None
    source = meta.get("source")
    return str(source) if source is not None else None


def _train_from_corrections(
    settings: "Settings",
    *,
    models_dir: Path,
    data: Path | None,
    text_column: str,
    label_column: str,
    task: str,
    as_json: bool,
    loader: CorrectionsLoader | None,
) -> None:
    from nlp import training

    if loader is None:
        _fail(
            "train --from-corrections needs the database of agents' corrections, "
            "which this installation does not provide"
        )
    if task != "category":
        _fail("corrections are category corrections; use --task category")
    corrections: Sequence[tuple[str, str]] = loader(settings)
    if not corrections:
        _fail("there are no corrections yet; agents' category corrections are stored as they come")
    if data is None:
        current_source = _current_source(models_dir, task)
        if current_source not in (None, "default", "corrections"):
            _fail(
                "the current model was trained from your own data; pass it again with --data FILE "
                "so the corrections are added to it (without --data Kefu's shipped examples are "
                "the base, which would replace your categories)"
            )
    base = (
        training.read_examples(data, text_column=text_column, label_column=label_column)
        if data is not None
        else training.default_examples(task)
    )
    with _progress("Training with corrections") as progress:
        outcome = training.train_with_corrections(
            base,
            list(corrections),
            models_dir=models_dir,
            task=task,
            pipelines=_pipelines(settings),
            progress=progress,
        )
    if as_json:
        _print_json(
            {
                "promoted": outcome.promoted,
                "metric": outcome.metric,
                "old_score": outcome.old_score,
                "new_score": outcome.new_score,
                "n_corrections": outcome.n_corrections,
                "n_heldout": outcome.n_heldout,
                "version": outcome.version,
            }
        )
        return
    console = Console()
    verdict = (
        f"The new model [bold]{outcome.version}[/] is now current."
        if outcome.promoted
        else "The new model was worse on held-out data; the current model stays."
    )
    console.print(
        f"{outcome.n_corrections} corrections. Held-out {outcome.metric} "
        f"({outcome.n_heldout} rows): without corrections {outcome.old_score:.4f}, "
        f"with corrections {outcome.new_score:.4f}. {verdict}"
    )
