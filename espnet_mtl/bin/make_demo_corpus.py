"""Generate the synthetic MuST-C-style demo corpus (espeak-ng speech, grammar-made translations).

    python -m espnet_mtl.bin.make_demo_corpus --out downloads/mini_st --tgt_langs de,es,fr
    python -m espnet_mtl.bin.make_demo_corpus --out downloads/mini_st_low --n_train 400 \
        --n_aux_mt 20000 --n_aux_asr 1500      # + <out>/aux: MT-only bitext, ASR-only speech

A rerun with the same arguments returns immediately; a second run into the same
--out while one is generating is refused (exit status 1). See
espnet_mtl/demo/make_corpus.py.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="corpus root (gets en-<tgt>/data/<split>/...)")
    parser.add_argument("--tgt_langs", default="de",
                        help="comma-separated target languages out of de,es,fr (default: de)")
    parser.add_argument("--n_train", type=int, default=1500, help="training utterances")
    parser.add_argument("--n_dev", type=int, default=100, help="dev utterances")
    parser.add_argument("--n_test", type=int, default=100, help="tst-COMMON utterances")
    parser.add_argument("--seed", type=int, default=0, help="random seed (sentences, talks, pauses)")
    parser.add_argument("--n_aux_mt", type=int, default=0,
                        help="MT-only sentence pairs written to <out>/aux/bitext (first target "
                             "language; never an ST sentence)")
    parser.add_argument("--n_aux_asr", type=int, default=0,
                        help="ASR-only utterances written to <out>/aux/LibriSpeech")
    parser.add_argument("--workers", type=int, default=2,
                        help="synthesis processes (speed only; the output does not depend on it)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("make_demo_corpus")
    # Imported here so that --help stays fast.
    from espnet_mtl.demo.make_corpus import make_corpus
    from espnet_mtl.runner.locks import LockBusy

    tgt_langs = [t.strip() for t in args.tgt_langs.split(",") if t.strip()]
    start = time.time()
    for name in ("n_train", "n_dev", "n_test", "n_aux_mt", "n_aux_asr"):
        if getattr(args, name) < 0:
            print(f"make_demo_corpus: error: --{name} must be >= 0", file=sys.stderr)
            return 2
    try:
        summary = make_corpus(args.out, tgt_langs=tgt_langs, n_train=args.n_train, n_dev=args.n_dev,
                              n_test=args.n_test, seed=args.seed, workers=args.workers)
        aux = None
        if args.n_aux_mt or args.n_aux_asr:
            from espnet_mtl.demo.aux_corpus import make_aux_corpus
            aux = make_aux_corpus(f"{args.out}/aux", args.out, tgt_lang=tgt_langs[0],
                                  n_mt=args.n_aux_mt, n_asr=args.n_aux_asr, seed=args.seed + 1,
                                  workers=args.workers)
    except ValueError as e:
        log.error("%s", e)
        return 2
    except (LockBusy, OSError) as e:
        # Another generation into --out (LockBusy names it), or an unwritable --out:
        # the user's to resolve, so one line and no traceback.
        print(f"make_demo_corpus: error: {e}", file=sys.stderr)
        return 1
    pairs = ", ".join(f"en-{t}" for t in dict.fromkeys(tgt_langs))
    if summary["skipped"]:
        log.info("%s already holds this corpus (%s); nothing done", summary["out"], pairs)
    else:
        log.info("wrote %s (%s) in %.1f s", summary["out"], pairs, time.time() - start)
    for split, st in summary["stats"].items():
        log.info("%-10s %5d utterances in %3d talks: %.3f h of speech, %.3f h of audio",
                 split, st["utterances"], st["talks"], st["speech_hours"], st["audio_hours"])
    if aux is not None:
        log.info("%s: %d MT-only pairs (bitext), %d ASR-only utterances (LibriSpeech)%s",
                 aux["out"], aux["n_mt"], aux["n_asr"], " (already there)" if aux["skipped"] else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
