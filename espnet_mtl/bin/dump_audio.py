"""`python -m espnet_mtl.bin.dump_audio`: stage 3 for one part of a data dir."""

import argparse
import json
import logging
import sys

from espnet_mtl.audio_dump import AudioError, dump_audio
from espnet_mtl.fileio import TableError


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--in_dir", required=True, help="data dir (wav.scp, segments, texts)")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--feats_type", default="raw", choices=["raw", "fbank"])
    p.add_argument("--audio_format", default="flac", choices=["flac", "wav"])
    p.add_argument("--fs", type=int, default=16000)
    p.add_argument("--n_mels", type=int, default=80)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s: %(message)s")
    try:
        stats = dump_audio(args.in_dir, args.out_dir, feats_type=args.feats_type,
                           audio_format=args.audio_format, fs=args.fs, n_mels=args.n_mels)
    except (AudioError, TableError, ValueError) as e:
        print(f"dump_audio: error: {e}", file=sys.stderr)
        return 1
    logging.info("dump_audio %s: %s", args.in_dir, json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
