"""charlstm: a reproducible pipeline that trains a character-level LSTM and generates text."""

import logging
import os
import sys

# The project's own telemetry and log policy: telemetry off, no MLflow progress bars, and none of
# TensorFlow's native log lines (level 3: not even its ERROR-level notices, such as oneDNN's
# "supports DT_INT32 only on platforms with AVX-512", which are advice, not errors: a real error
# still raises an exception), whatever the user's shell says and however a stage is started
# (`make`, a direct `dvc repro`, a queued experiment): set before any stage imports MLflow, Great
# Expectations or TensorFlow. An explicit value in the environment wins (TF_CPP_MIN_LOG_LEVEL=0
# shows everything).
for _name, _value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "true",
    "TF_CPP_MIN_LOG_LEVEL": "3",
}.items():
    os.environ.setdefault(_name, _value)

# TensorFlow's Python notices ("WARNING:absl:...") go through absl's logger, named "absl", and
# urllib3 warns of every retry against an unreachable server before the one-line error that
# follows; errors still show.
for _logger in ("absl", "urllib3"):
    logging.getLogger(_logger).setLevel(logging.ERROR)

# Under `python -m pipeline.<command>` (what dvc.yaml runs), sys.argv[0] is "-m" while this
# package is imported, before the command's own imports: TensorFlow's native log lines are kept
# off stderr from here on (`core/native_logs.py`), also those its import prints.
if sys.argv[:1] == ["-m"]:
    from pipeline.core.native_logs import filter_process_stderr

    filter_process_stderr()
