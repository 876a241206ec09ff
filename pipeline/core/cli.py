"""Shared command-line behaviour for the stage modules.

`run_stage(main)` sets up logging and turns a `PipelineError` or an `OSError` (a missing input, a
full disk, a refused permission) into one line on stderr and exit status 1. Set `CHARLSTM_DEBUG=1`
to get the full traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from pipeline.core.errors import PipelineError

log = logging.getLogger("pipeline")


def run_stage(name: str, main: Callable[[], None]) -> None:
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {name}: %(message)s", datefmt="%H:%M:%S"
    )
    debug = os.environ.get("CHARLSTM_DEBUG", "") not in ("", "0")
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
        sys.stderr.write(f"{name}: error: {message}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write(f"{name}: interrupted\n")
        sys.exit(130)
