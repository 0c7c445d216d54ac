import logging
import sys


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s [%(name)s %(process)d] %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
