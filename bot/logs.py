"""Where log lines go: a file by default, the terminal with ``--verbose``.

A command prints what the user asked for. Library chatter (open_clip's INFO lines on the root
logger, transformers' load reports and progress bars, Python warnings) goes to the log file;
only the application's own warnings and errors also reach the terminal.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

LOG_FILE_ENV = "CAPRET_LOG_FILE"
OWN_LOGGERS = ("bot", "store", "engine")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def default_log_file() -> Path:
    """``$CAPRET_LOG_FILE``, else ``capret.log`` in the cache folder (``$CAPRET_CACHE_DIR``)."""
    if os.environ.get(LOG_FILE_ENV):
        return Path(os.environ[LOG_FILE_ENV])
    cache = os.environ.get("CAPRET_CACHE_DIR") or Path.home() / ".cache" / "rs-capret"
    return Path(cache) / "capret.log"


class _OwnWarnings(logging.Filter):
    """Lets through the application's own loggers only (not the libraries')."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".", 1)[0] in OWN_LOGGERS


def setup_logging(verbose: bool, log_file: Path | None = None) -> Path | None:
    """Configure logging for one command; returns the log file (None with ``verbose``)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    # Off then on: a second setup in one process (tests, a command run from another) routes
    # warnings anew instead of keeping the first one's route.
    logging.captureWarnings(False)
    logging.captureWarnings(True)
    if verbose:
        logging.basicConfig(level=logging.DEBUG, format=FORMAT, force=True)
        return None
    _quiet_transformers()
    root.setLevel(logging.INFO)
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    console.addFilter(_OwnWarnings())
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root.addHandler(console)
    path = log_file or default_log_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(path, encoding="utf-8")
    except OSError:  # a read-only home: the terminal's warnings are all there is
        return None
    file.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(file)
    return path


def _quiet_transformers() -> None:
    """The transformers library prints through its own stderr handler (load reports with
    "UNEXPECTED" keys) and tqdm bars. Already imported: route its records to our handlers
    instead. Not yet imported (importing it costs seconds): its environment settings keep it to
    errors.
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    hf_logging = sys.modules.get("transformers.utils.logging")
    if hf_logging is None:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        return
    hf_logging.set_verbosity_warning()
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
    hf_logging.disable_progress_bar()
