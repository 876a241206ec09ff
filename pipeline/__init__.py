"""charlstm: a reproducible pipeline that trains a character-level LSTM and generates text."""

import os

# The project's own telemetry policy: off, whatever the user's shell says (set before any stage
# imports MLflow, Great Expectations or TensorFlow). An explicit value in the environment wins.
for _name, _value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "true",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}.items():
    os.environ.setdefault(_name, _value)
