"""`python -m espnet_mtl.bin.merge_decode_outputs DIR NJ`: merge stage-12 job outputs.

Each job writes DIR/output.<n>/1best_recog/{text,token,token_int,score};
the merged tables go to DIR/{text,token,...}. Stage 13 then requires a
hypothesis for every reference, so a job that died midway cannot go unnoticed.
"""

import sys
from pathlib import Path

from espnet_mtl.fileio import TableError, read_table, write_table

FILES = ("text", "token", "token_int", "score")


def merge(out_dir: Path, nj: int) -> int:
    merged = {name: {} for name in FILES}
    for n in range(1, nj + 1):
        best = out_dir / f"output.{n}" / "1best_recog"
        for name in FILES:
            path = best / name
            if path.exists():
                merged[name].update(read_table(path))
    keys = set(merged["score"])
    if not keys:
        raise RuntimeError(f"{out_dir}: no decoding output in output.*/1best_recog")
    for name, table in merged.items():
        if name == "text":
            # ESPnet omits the text line of an empty hypothesis: keep it, empty.
            table = {k: table.get(k, "") for k in keys}
        if table:
            write_table(out_dir / name, table)
    return len(keys)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out_dir, nj = Path(argv[0]), int(argv[1])
    try:
        n = merge(out_dir, nj)
    except (RuntimeError, TableError, OSError) as e:
        print(f"merge_decode_outputs: error: {e}", file=sys.stderr)
        return 1
    print(f"merge_decode_outputs: {out_dir}: {n} hypotheses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
