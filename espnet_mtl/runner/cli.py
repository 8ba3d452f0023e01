"""The shared main() of the data-preparation CLIs: expected failures print one line.

A bad corpus or an unwritable output is the user's to fix, so it ends in
`<prog>: error: <message naming the file and line>` and exit status 1, with no
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from espnet_mtl.prep.datadir import DataDirError
from espnet_mtl.fileio import TableError


def run_main(prog: str, parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], object],
             errors: Sequence[type[Exception]], argv: list[str] | None = None) -> int:
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {prog} %(levelname)s: %(message)s")
    try:
        run(args)
    except (*errors, DataDirError, TableError, OSError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    return 0
