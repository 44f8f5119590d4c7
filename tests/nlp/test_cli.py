"""The train, evaluate and analyze commands, through Typer's test runner."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from nlp.analysis import Analyzer
from nlp.classify import ModelStore
from nlp.cli import register
from settings import Settings, load_settings

runner = CliRunner()
Loader = Callable[[Settings], list[tuple[str, str]]]


@pytest.fixture
def data_dir(tmp_path: Path, models_dir: Path) -> Path:
    """A data directory whose models are a copy of the session's default models."""
    shutil.copytree(models_dir, tmp_path / "models")
    return tmp_path


def make_app(data_dir: Path, loader: Loader | None = None, **overrides: object) -> typer.Typer:
    app = typer.Typer()
    register(app, lambda: load_settings(data_dir=data_dir, **overrides), corrections_loader=loader)
    return app


def csv_file(path: Path, rows: list[tuple[str, str]], header: str = "text,label") -> Path:
    lines = [header] + [f'"{t}",{label}' for t, label in rows]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


GOOD_ROWS = [(f"I want a refund for order {i}", "returns") for i in range(8)] + [
    (f"my password {i} does not work", "account") for i in range(8)
]


def test_analyze_json_prints_one_object(data_dir: Path) -> None:
    result = runner.invoke(make_app(data_dir), ["analyze", "Where is my order #558201?", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["category"] == "delivery"
    assert data["language"] == "en"
    assert data["sentiment"] in ("negative", "neutral", "positive")
    assert data["urgency"] in ("low", "normal", "high")
    assert data["entities"] == [{"label": "ORDER", "text": "#558201", "start": 18, "end": 25}]
    assert set(data) == {
        "language",
        "category",
        "category_confidence",
        "sentiment",
        "sentiment_confidence",
        "urgency",
        "urgency_reasons",
        "entities",
        "summary",
        "key_phrases",
    }


def test_analyze_prints_a_table(data_dir: Path) -> None:
    result = runner.invoke(make_app(data_dir), ["analyze", "我忘记密码了"])
    assert result.exit_code == 0, result.output
    assert "category" in result.stdout
    assert "account" in result.stdout


def test_train_and_the_running_analyzer_picks_it_up(data_dir: Path, tmp_path: Path) -> None:
    analyzer = Analyzer(models_dir=data_dir / "models")
    data = csv_file(tmp_path / "train.csv", GOOD_ROWS)
    result = runner.invoke(make_app(data_dir), ["train", "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["labels"] == ["account", "returns"]
    assert report["task"] == "category"
    assert set(report["validation"]) == {
        "accuracy",
        "macro_f1",
        "in_scope_accuracy",
        "out_of_scope_recall",
    }
    store = ModelStore(data_dir / "models")
    assert store.current_version("category") == report["version"]
    meta = store.load("category")[1]
    assert meta["source"] == "file"
    assert meta["data_path"] == str(data)
    assert analyzer.reload_if_changed() is True
    assert analyzer.categories == ("account", "returns")


def test_train_with_validation_and_custom_columns(data_dir: Path, tmp_path: Path) -> None:
    data = csv_file(tmp_path / "t.csv", GOOD_ROWS, header="message,intent")
    val = csv_file(tmp_path / "v.csv", GOOD_ROWS[::3], header="message,intent")
    result = runner.invoke(
        make_app(data_dir),
        [
            "train",
            "--data",
            str(data),
            "--validation",
            str(val),
            "--text-column",
            "message",
            "--label-column",
            "intent",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "now the current model" in result.stdout
    assert "accuracy" in result.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("message,label\nhi,other\nho,billing\n", "no column 'text'"),
        ("text,label\nhi,other\n,billing\nho,billing\n", "row 2 (line 3) has an empty 'text'"),
        ("text,label\nhi,other\nho,other\n", "only one label ('other')"),
    ],
)
def test_a_bad_file_is_a_clear_error_and_the_model_stays(
    data_dir: Path, tmp_path: Path, content: str, message: str
) -> None:
    before = ModelStore(data_dir / "models").current_version("category")
    path = tmp_path / "bad.csv"
    path.write_text(content, "utf-8")
    result = runner.invoke(make_app(data_dir), ["train", "--data", str(path)])
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.output
    assert ModelStore(data_dir / "models").current_version("category") == before


def test_train_needs_data(data_dir: Path) -> None:
    result = runner.invoke(make_app(data_dir), ["train"])
    assert result.exit_code == 2
    assert "--data" in result.stderr


def test_train_default_retrains_the_shipped_model(data_dir: Path) -> None:
    before = ModelStore(data_dir / "models").current_version("sentiment")
    result = runner.invoke(
        make_app(data_dir), ["train", "--default", "--task", "sentiment", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["labels"] == ["negative", "neutral", "positive"]
    assert ModelStore(data_dir / "models").current_version("sentiment") != before


def test_evaluate_json_and_confusion_matrix(data_dir: Path, tmp_path: Path) -> None:
    rows = [
        ("I forgot my password", "account"),
        ("where is my parcel", "delivery"),
        ("please cancel my subscription", "cancellation"),
        ("tell me a joke about penguins", "other"),
        ("what is the capital of Peru", "other"),
    ]
    data = csv_file(tmp_path / "eval.csv", rows)
    png = tmp_path / "out" / "confusion.png"
    result = runner.invoke(
        make_app(data_dir), ["evaluate", "--data", str(data), "--json", "--confusion", str(png)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"accuracy", "macro_f1", "in_scope_accuracy", "out_of_scope_recall"} <= set(report)
    assert report["in_scope_accuracy"] == 1.0
    assert report["out_of_scope_recall"] is not None
    assert report["n"] == 5
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_sentiment_without_other_rows(data_dir: Path, tmp_path: Path) -> None:
    rows = [("thank you so much", "positive"), ("this is awful", "negative")]
    data = csv_file(tmp_path / "s.csv", rows)
    result = runner.invoke(
        make_app(data_dir), ["evaluate", "--data", str(data), "--task", "sentiment", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["in_scope_accuracy"] is None
    assert report["out_of_scope_recall"] is None
    assert report["accuracy"] == 1.0


def test_evaluate_prints_tables(data_dir: Path, tmp_path: Path) -> None:
    data = csv_file(tmp_path / "e.csv", [("I forgot my password", "account"), ("hi", "other")])
    result = runner.invoke(make_app(data_dir), ["evaluate", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "macro-F1" in result.stdout
    assert "out-of-scope recall" in result.stdout


def test_evaluate_a_missing_file(data_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(make_app(data_dir), ["evaluate", "--data", str(tmp_path / "no.csv")])
    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_from_corrections_without_a_database(data_dir: Path) -> None:
    result = runner.invoke(make_app(data_dir), ["train", "--from-corrections"])
    assert result.exit_code == 2
    assert "needs the database" in " ".join(result.stderr.split())


def test_from_corrections_with_a_loader(data_dir: Path) -> None:
    seen: list[Settings] = []

    def loader(settings: Settings) -> list[tuple[str, str]]:
        seen.append(settings)
        return [(f"Do you sell spare part {c} for the blender?", "product") for c in "ABCDEFGH"]

    result = runner.invoke(make_app(data_dir, loader), ["train", "--from-corrections", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_corrections"] == 8
    assert isinstance(report["promoted"], bool)
    assert report["new_score"] >= 0 and report["old_score"] >= 0
    assert seen and seen[0].data_dir == data_dir


def test_a_bad_order_pattern_setting_is_a_clear_error(data_dir: Path) -> None:
    app = make_app(data_dir, order_number_pattern="([")
    result = runner.invoke(app, ["analyze", "hello"])
    assert result.exit_code == 2
    assert "order number pattern" in result.stderr
    assert "Traceback" not in result.output


def test_settings_model(data_dir: Path) -> None:
    assert load_settings(data_dir=data_dir).models_dir == data_dir / "models"
