"""The results table (one or several models) and the JSON report (strict JSON, written atomically)."""

from __future__ import annotations

import json
from pathlib import Path

from anydepth.evaluation import IMAGES, PROTOCOLS, format_markdown_table, write_report
from anydepth.metrics import METRIC_NAMES


def test_format_markdown_table() -> None:
    full = {name: 0.1234 * (i + 1) for i, name in enumerate(METRIC_NAMES)}
    results = {"nyuv2": {**full, IMAGES: 654}, "kitti": {**full, "abs_rel": 0.07649, "d1": float("nan"), IMAGES: 2}}
    lines = format_markdown_table(results).splitlines()
    assert lines[0] == "| benchmark | AbsRel | δ1 | SqRel | RMSE | RMSE log | log10 | SILog | δ2 | δ3 | images |"
    assert lines[1] == "| " + " | ".join(["---"] * 11) + " |"
    assert lines[2] == "| nyuv2 | 0.123 | 0.864 | 0.247 | 0.370 | 0.494 | 0.617 | 0.740 | 0.987 | 1.111 | 654 |"
    assert lines[3].startswith("| kitti | 0.076 | n/a | 0.247 |") and lines[3].endswith("| 2 |")
    assert len(lines) == 4
    assert format_markdown_table({"x": {"d1": 0.5, "abs_rel": 0.25}}).splitlines()[2] == "| x | 0.250 | 0.500 |"


def test_metric_tables_follow_the_papers_tables_3_and_4() -> None:
    full = {name: 0.1234 * (i + 1) for i, name in enumerate(METRIC_NAMES)}
    lines = format_markdown_table({"nyuv2-metric": {**full, IMAGES: 654}}, metric=True).splitlines()
    header = "| benchmark | δ1 | δ2 | δ3 | AbsRel | RMSE | log10 | RMSE log | SqRel | SILog | images |"
    assert lines[0] == header  # Table 3's columns, then Table 4's RMSE log, then the rest
    assert lines[2] == "| nyuv2-metric | 0.864 | 0.987 | 1.111 | 0.123 | 0.370 | 0.617 | 0.494 | 0.247 | 0.740 | 654 |"


def test_format_markdown_table_of_several_models() -> None:
    teacher = {"kitti": {"abs_rel": 0.1, "d1": 0.9, IMAGES: 2}, "nyuv2": {"abs_rel": 0.2, "d1": 0.8, IMAGES: 3}}
    student = {"nyuv2": {"abs_rel": 0.05, "d1": float("nan"), IMAGES: 3}}
    assert format_markdown_table({"teacher": teacher, "student": student}).splitlines() == [
        "| benchmark | model | AbsRel | δ1 | images |",
        "| --- | --- | --- | --- | --- |",
        "| kitti | teacher | 0.100 | 0.900 | 2 |",  # grouped by benchmark: the rows to compare are adjacent
        "| nyuv2 | teacher | 0.200 | 0.800 | 3 |",
        "| nyuv2 | student | 0.050 | n/a | 3 |",
    ]


def test_write_report_is_strict_json_in_the_given_order(tmp_path: Path) -> None:
    results = {"nyuv2": {"abs_rel": 0.1, "d1": float("nan"), IMAGES: 0}, "kitti": {"abs_rel": 0.2, IMAGES: 3}}
    path = write_report(tmp_path / "out" / "metrics.json", results, PROTOCOLS, "ckpt.pth", 518)
    text = path.read_text()
    assert "NaN" not in text and [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no .tmp left
    report = json.loads(text)
    assert list(report) == ["metrics", "checkpoint", "protocols", "input_size"]
    assert list(report["metrics"]) == ["nyuv2", "kitti"] and report["metrics"]["nyuv2"]["d1"] is None
    assert report["protocols"] == {name: PROTOCOLS[name].to_dict() for name in ("nyuv2", "kitti")}
    several = write_report(path, {"a": results, "b": {"sintel": {"abs_rel": 0.3}}}, PROTOCOLS, {"a": "x", "b": "y"}, 28)
    report = json.loads(several.read_text())
    assert list(report) == ["models", "protocols", "input_size"]
    assert list(report["protocols"]) == ["nyuv2", "kitti", "sintel"] and report["models"]["b"]["checkpoint"] == "y"
