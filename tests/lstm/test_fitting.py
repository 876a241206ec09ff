"""pipeline/lstm/fitting.py: the divergence check, and stateful training (the twin fitted, the plain
model validated and saved)."""

import math

import numpy as np
import pytest

from pipeline.core.config import TrainParams
from pipeline.core.errors import PipelineError
from pipeline.lstm.fitting import (
    check_finite,
)
from tests.support.params import committed
from tests.support.training import fitted_job


def test_check_finite_names_the_metric_and_the_fix():
    check_finite({"loss": [3.0, 2.5], "val_loss": [3.1, 2.6]})
    with pytest.raises(
        PipelineError, match=r"training diverged: loss became nan at epoch 2; lower"
    ):
        check_finite({"loss": [3.0, math.nan]})


def test_stateful_training_fits_the_twin_and_validates_and_saves_the_plain_model(tmp_path):
    params = committed(
        TrainParams,
        stateful=True,
        batch_size=4,
        units=8,
        embedding_dim=4,
        layers=1,
        epochs=2,
        patience=2,
    )
    job, history = fitted_job(tmp_path, params)
    model, scorer, data = job.model, job.scorer, job.data
    assert model.get_layer("lstm_0").stateful and not scorer.get_layer("lstm_0").stateful

    assert len(history["val_loss"]) == 2 and all(map(math.isfinite, history["val_loss"]))
    trained = job.trained_model()
    assert trained is scorer
    for want, got in zip(model.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(want, got)
    odd_batch = np.zeros((3, 7), dtype=np.int32)  # any batch size: no state kept
    assert trained.predict(odd_batch, verbose=0).shape == (3, 7, len(data.vocabulary))
