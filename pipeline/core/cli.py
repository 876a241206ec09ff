"""Shared command-line behaviour for the stage modules.

`run_stage(main)` sets up logging, keeps TensorFlow's native log lines off stderr
(`core/native_logs.py`) and turns a `PipelineError` or an `OSError` (a missing input, a full disk,
a refused permission) into one line on stderr and exit status 1. Set `CHARLSTM_DEBUG=1` to get the
full traceback and every native log line instead.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from pipeline.core.errors import PipelineError
from pipeline.core.native_logs import filtered_stderr
from pipeline.core.urls import RedactingFormatter, redact_text

log = logging.getLogger("pipeline")


def run_stage(name: str, main: Callable[[], None]) -> None:
    handler = logging.StreamHandler()  # every log line loses the credentials of its URLs
    handler.setFormatter(RedactingFormatter(f"%(asctime)s {name}: %(message)s", "%H:%M:%S"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    debug = os.environ.get("CHARLSTM_DEBUG", "") not in ("", "0")
    with filtered_stderr():
        run_main(name, main, debug)


def run_main(name: str, main: Callable[[], None], debug: bool) -> None:
    try:
        main()
    # OSError covers a missing input as well as a full disk (ENOSPC) or a file-size limit (EFBIG)
    # hit while writing; the atomic writers attach the destination path to the latter.
    except (PipelineError, OSError) as error:
        if debug:
            raise
        message = str(error).replace("\n", " ")
        if isinstance(error, OSError) and error.filename:
            message = f"{error.strerror}: {error.filename}"
        # " ".join: HDF5's strerror, for one, spans lines
        sys.stderr.write(f"{name}: error: {redact_text(' '.join(message.split()))}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write(f"{name}: interrupted\n")
        sys.exit(130)
