"""charlstm: a reproducible pipeline that trains a character-level LSTM and generates text."""

import logging
import os

# The project's own telemetry and log policy: telemetry off and TensorFlow's start-up notices
# quiet, whatever the user's shell says and however a stage is started (`make`, a direct
# `dvc repro`, a queued experiment): set before any stage imports MLflow, Great Expectations or
# TensorFlow. An explicit value in the environment wins.
for _name, _value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "true",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}.items():
    os.environ.setdefault(_name, _value)

# TensorFlow's Python notices ("WARNING:absl:...") go through absl's logger, named "absl";
# errors still show.
logging.getLogger("absl").setLevel(logging.ERROR)
