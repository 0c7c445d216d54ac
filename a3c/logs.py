import logging
import os
import sys


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [%(name)s {os.getpid()}] %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
