"""Training data checks, training runs and agents' corrections."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlp.classify import ModelStore
from nlp.pipeline import Pipelines
from nlp.training import (
    Example,
    TrainingDataError,
    check_examples,
    corrections_to_examples,
    default_examples,
    examples_sha256,
    merge_corrections,
    read_examples,
    split_examples,
    train,
    train_with_corrections,
)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def test_read_examples(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", 'msg,cat\n"hello, world",other\n订单没到,delivery\n')
    assert read_examples(f, text_column="msg", label_column="cat") == [
        Example("hello, world", "other"),
        Example("订单没到", "delivery"),
    ]


def test_missing_column_is_named(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", "message,label\nhi,other\n")
    with pytest.raises(
        TrainingDataError, match=r"no column 'text'; the columns are 'message', 'label'"
    ):
        read_examples(f)


def test_empty_text_names_the_row(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", "text,label\nhi,other\n  ,billing\nok,other\n")
    with pytest.raises(TrainingDataError, match=r"row 2 \(line 3\) has an empty 'text'"):
        read_examples(f)


def test_empty_label_names_the_row(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", "text,label\nhi,other\nrefund please,\n")
    with pytest.raises(TrainingDataError, match=r"row 2 \(line 3\) has an empty 'label'"):
        read_examples(f)


def test_missing_file_not_utf8_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="no such file"):
        read_examples(tmp_path / "nope.csv")
    latin = write(tmp_path / "l.csv", "text,label\ncafé,other\n", encoding="latin-1")
    with pytest.raises(TrainingDataError, match="not UTF-8"):
        read_examples(latin)
    with pytest.raises(TrainingDataError, match="empty"):
        read_examples(write(tmp_path / "e.csv", ""))
    with pytest.raises(TrainingDataError, match="no rows"):
        read_examples(write(tmp_path / "h.csv", "text,label\n"))


def test_one_class_is_refused() -> None:
    with pytest.raises(TrainingDataError, match="only one label \\('billing'\\)"):
        check_examples([Example("a", "billing"), Example("b", "billing")], "category")


def test_sentiment_labels_are_checked() -> None:
    with pytest.raises(TrainingDataError, match="sentiment label '1' on row 2"):
        check_examples([Example("good", "positive"), Example("bad", "1")], "sentiment")


def test_unknown_task_is_refused() -> None:
    with pytest.raises(TrainingDataError, match="unknown task"):
        check_examples([Example("a", "x"), Example("b", "y")], "topic")


def test_bad_file_keeps_the_current_model(tmp_path: Path, pipelines: Pipelines) -> None:
    models = tmp_path / "models"
    good = [Example(f"refund number {i}", "returns") for i in range(6)] + [
        Example(f"password reset {i}", "account") for i in range(6)
    ]
    first = train(good, task="category", models_dir=models, pipelines=pipelines)
    with pytest.raises(TrainingDataError):
        train(good[:6], task="category", models_dir=models, pipelines=pipelines)  # one class
    assert ModelStore(models).current_version("category") == first.version
    assert ModelStore(models).versions("category") == [first.version]


def test_split_is_stratified_and_keeps_singletons() -> None:
    examples = (
        [Example(f"a{i}", "a") for i in range(10)]
        + [Example(f"b{i}", "b") for i in range(5)]
        + [Example("c0", "c")]
    )
    train_part, held = split_examples(examples, 0.2, seed=3)
    assert sorted(e.label for e in held) == ["a", "a", "b"]
    assert Example("c0", "c") in train_part
    assert len(train_part) + len(held) == len(examples)


def test_examples_sha256_changes_with_the_data() -> None:
    a = [Example("x", "1"), Example("y", "2")]
    assert examples_sha256(a) == examples_sha256(list(a))
    assert examples_sha256(a) != examples_sha256([Example("x", "2"), Example("y", "2")])


# --- corrections (pure part) ----------------------------------------------------------------


def test_a_correction_becomes_a_training_example() -> None:
    examples = corrections_to_examples([("  My parcel never came  ", "delivery")])
    assert examples == [Example("My parcel never came", "delivery", "en")]


def test_corrections_skip_empty_rows_and_the_latest_wins() -> None:
    examples = corrections_to_examples(
        [
            ("charged twice", "delivery"),
            ("", "billing"),
            ("refund?", ""),
            ("Charged   twice", "billing"),
            ("我的订单没到", "delivery"),
        ]
    )
    assert examples == [
        Example("Charged   twice", "billing", "en"),
        Example("我的订单没到", "delivery", "zh"),
    ]


def test_a_correction_replaces_a_base_example_with_the_same_text() -> None:
    base = [Example("charged twice", "delivery"), Example("hello", "other")]
    fixes = corrections_to_examples([("Charged twice", "billing")])
    merged = merge_corrections(base, fixes)
    assert merged == [Example("hello", "other"), Example("Charged twice", "billing", "en")]


# --- corrections (training) -----------------------------------------------------------------


def test_train_with_useful_corrections_promotes_the_new_model(
    tmp_path: Path, pipelines: Pipelines
) -> None:
    base = default_examples("category")
    # A new kind of message the shipped examples do not cover, consistently corrected.
    corrections = [
        (f"Do you sell spare part {code} for the {item}?", "product")
        for code, item in [
            ("X1", "blender"),
            ("Y2", "vacuum"),
            ("Z3", "kettle"),
            ("K4", "toaster"),
            ("M5", "mixer"),
            ("P6", "fan"),
            ("Q7", "heater"),
            ("R8", "lamp"),
            ("S9", "drill"),
            ("T10", "printer"),
        ]
    ]
    outcome = train_with_corrections(base, corrections, models_dir=tmp_path, pipelines=pipelines)
    assert outcome.n_corrections == 10
    assert outcome.n_heldout > 100
    assert outcome.metric == "macro_f1"
    assert outcome.new_score >= outcome.old_score
    assert outcome.promoted is True
    assert outcome.version == ModelStore(tmp_path).current_version("category")
    assert outcome.training is not None
    assert outcome.training.meta["source"] == "corrections"


def test_harmful_corrections_keep_the_current_model(tmp_path: Path, pipelines: Pipelines) -> None:
    base = default_examples("category")
    # Corrections that contradict the data: password questions labelled as praise.
    texts = [e.text for e in base if e.label == "account"][:40]
    outcome = train_with_corrections(
        base, [(t, "praise") for t in texts], models_dir=tmp_path, pipelines=pipelines
    )
    assert outcome.new_score < outcome.old_score
    assert outcome.promoted is False
    assert outcome.version is None
    assert ModelStore(tmp_path).current_version("category") is None


def test_no_corrections_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="no corrections"):
        train_with_corrections(default_examples("category"), [("", "billing")], models_dir=tmp_path)
