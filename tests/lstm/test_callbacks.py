"""Training output a person can read: one progress bar over the whole run with its ETA on a
terminal, one line per epoch elsewhere."""

import io
import logging

import keras
import numpy as np
import pytest

from pipeline.lstm.callbacks import TrainingProgress, eta_seconds, format_duration


def test_format_duration():
    assert format_duration(5) == "5s"
    assert format_duration(75) == "1m15s"
    assert format_duration(3725) == "1h02m05s"


def test_eta_is_the_mean_pace_times_the_steps_left():
    assert eta_seconds(10.0, 5, 20) == pytest.approx(30.0)
    assert eta_seconds(10.0, 20, 20) == 0.0
    assert np.isnan(eta_seconds(0.0, 0, 20))


class Terminal(io.StringIO):
    """Captures what a terminal would show."""

    def isatty(self) -> bool:
        return True


def fit(progress: TrainingProgress, epochs: int = 3) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    features, targets = np.ones((8, 2)), np.ones((8, 1))
    model.fit(
        features,
        targets,
        batch_size=4,
        epochs=epochs,
        validation_data=(features, targets),
        callbacks=[progress],
        verbose=0,
    )


def test_without_a_terminal_each_epoch_is_one_line_with_the_losses_and_time_left(caplog):
    stream = io.StringIO()
    with caplog.at_level(logging.INFO, logger="pipeline.lstm.callbacks"):
        fit(TrainingProgress(epochs=3, steps_per_epoch=2, stream=stream))
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 3
    assert lines[0].startswith("epoch 1/3: loss ")
    assert ", val_loss " in lines[0]
    assert lines[-1].endswith("at most 0s left")
    assert stream.getvalue() == ""  # no bar redrawn into a log file


def test_on_a_terminal_one_bar_counts_every_step_of_the_run(caplog):
    terminal = Terminal()
    with caplog.at_level(logging.INFO, logger="pipeline.lstm.callbacks"):
        fit(TrainingProgress(epochs=3, steps_per_epoch=2, stream=terminal))
    shown = terminal.getvalue()
    assert "6/6" in shown  # 3 epochs x 2 steps in one bar
    assert "epoch 3/3" in shown
    assert "val_loss=" in shown
    assert "<" in shown  # tqdm's elapsed<remaining
    assert not caplog.records


def test_a_resumed_run_counts_only_the_epochs_left():
    assert TrainingProgress(epochs=5, steps_per_epoch=2, first_epoch=3).steps_total == 4
