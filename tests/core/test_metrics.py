"""pipeline/core/metrics.py: nested numbers become dotted names; other values are left out."""

from __future__ import annotations

from pipeline.core.metrics import flatten_metrics


def test_metric_names_are_the_paths_of_metrics_json():
    flat = flatten_metrics({"test": {"bpc": 2.0}, "margin_bpc": 1, "model": "x"})
    assert flat == {"test.bpc": 2.0, "margin_bpc": 1.0}
    assert flatten_metrics({"order": 6, "test": {"x": 1}}, "ngram.") == {
        "ngram.order": 6.0,
        "ngram.test.x": 1.0,
    }
