"""pipeline/tracking/plots.py: each figure draws one line per metric, on labelled axes, from the
numbers it was given."""

import numpy as np

from pipeline.tracking.plots import plot_history, plot_sampling


def test_the_history_figure_draws_both_losses_against_the_epoch(tmp_path):
    history = tmp_path / "train_history.csv"
    history.write_text("epoch,loss,val_loss\n1,3.0,3.1\n2,2.0,2.5\n3,1.5,2.4\n", encoding="utf-8")
    axis = plot_history(history).axes[0]
    lines = {line.get_label(): line for line in axis.get_lines()}
    assert sorted(lines) == ["loss", "val_loss"]
    np.testing.assert_array_equal(lines["loss"].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines["val_loss"].get_ydata(), [3.1, 2.5, 2.4])
    assert axis.get_xlabel() == "epoch" and "nats per character" in axis.get_ylabel()


def test_the_sampling_figure_draws_each_metric_against_the_temperature_in_order():
    names = ("distinct_2", "known_word_share", "copied_8gram_share", "repeated_4gram_share")
    rows = {
        1.0: dict.fromkeys(names, 0.3),
        0.0: dict.fromkeys(names, 0.1),
        0.5: dict.fromkeys(names, 0.2),
    }
    axis = plot_sampling(rows).axes[0]
    assert [line.get_label() for line in axis.get_lines()] == list(names)
    for line in axis.get_lines():
        np.testing.assert_array_equal(line.get_xdata(), [0.0, 0.5, 1.0])
        np.testing.assert_array_equal(line.get_ydata(), [0.1, 0.2, 0.3])
    assert axis.get_xlabel().startswith("temperature") and axis.get_ylabel()
