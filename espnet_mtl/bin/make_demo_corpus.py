"""Generate the synthetic demo corpora (espeak-ng speech, grammar-made translations).

    python -m espnet_mtl.bin.make_demo_corpus --out downloads/mini_st --tgt_langs de,es,fr
    python -m espnet_mtl.bin.make_demo_corpus --out downloads/mini_st_low --n_train 400 \
        --n_aux_mt 20000 --n_aux_asr 1500      # + <out>/aux: MT-only bitext, ASR-only speech
    python -m espnet_mtl.bin.make_demo_corpus --out downloads/covost2_demo --layout covost2 \
        --src_langs de,es,fr --n_train 500 --n_dev 50 --n_test 50   # X->En, per language

--layout must_c (default): English speech, MuST-C v1 layout (en-<tgt>/data/...),
see espnet_mtl/demo/make_corpus.py. --layout covost2: German, Spanish and
French speech with English translations, Common Voice v4 + CoVoST 2 layout
(<src>/clips/*.mp3, validated.tsv, covost_v2.<src>_en.tsv), see
espnet_mtl/demo/covost_corpus.py. A rerun with the same arguments returns
immediately; a second run into the same --out while one is generating is
refused (exit status 1).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True,
                        help="corpus root (gets en-<tgt>/data/<split>/..., or <src>/... with "
                             "--layout covost2)")
    parser.add_argument("--layout", choices=("must_c", "covost2"), default="must_c",
                        help="must_c: English speech, MuST-C v1 layout (default); covost2: "
                             "X->En speech (--src_langs), Common Voice + CoVoST 2 layout")
    parser.add_argument("--tgt_langs", default=None,
                        help="must_c: comma-separated target languages out of de,es,fr "
                             "(default: de)")
    parser.add_argument("--src_langs", default=None,
                        help="covost2: comma-separated source languages out of de,es,fr "
                             "(default: de,es,fr); the target is English")
    parser.add_argument("--n_train", type=int, default=1500,
                        help="training utterances (covost2: per source language)")
    parser.add_argument("--n_dev", type=int, default=100,
                        help="dev utterances (covost2: per source language)")
    parser.add_argument("--n_test", type=int, default=100,
                        help="tst-COMMON utterances (covost2: test, per source language)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed (sentences, talks or sessions, pauses)")
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

    start = time.time()
    for name in ("n_train", "n_dev", "n_test", "n_aux_mt", "n_aux_asr"):
        if getattr(args, name) < 0:
            print(f"make_demo_corpus: error: --{name} must be >= 0", file=sys.stderr)
            return 2
    if args.layout == "covost2":
        return _covost2(args, log, start)
    if args.src_langs is not None:
        print("make_demo_corpus: error: --src_langs is for --layout covost2 (the must_c layout "
              "has English speech; choose its targets with --tgt_langs)", file=sys.stderr)
        return 2
    tgt_langs = [t.strip() for t in (args.tgt_langs or "de").split(",") if t.strip()]
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


def _covost2(args: argparse.Namespace, log: logging.Logger, start: float) -> int:
    """--layout covost2: the multilingual X->En corpus (espnet_mtl/demo/covost_corpus.py)."""
    from espnet_mtl.demo.covost_corpus import SRC_LANGS, make_covost_corpus
    from espnet_mtl.runner.locks import LockBusy

    # Options of the must_c layout only: refused rather than silently ignored.
    for name in ("tgt_langs", "n_aux_mt", "n_aux_asr"):
        if getattr(args, name):
            print(f"make_demo_corpus: error: --{name} is not available with --layout covost2 "
                  f"(the target language is English)", file=sys.stderr)
            return 2
    src_langs = [s.strip() for s in (args.src_langs or ",".join(SRC_LANGS)).split(",") if s.strip()]
    try:
        summary = make_covost_corpus(args.out, src_langs=src_langs, n_train=args.n_train,
                                     n_dev=args.n_dev, n_test=args.n_test, seed=args.seed,
                                     workers=args.workers)
    except ValueError as e:
        log.error("%s", e)
        return 2
    except (LockBusy, OSError) as e:
        print(f"make_demo_corpus: error: {e}", file=sys.stderr)
        return 1
    pairs = ", ".join(f"{lang}-en" for lang in summary["stats"])
    if summary["skipped"]:
        log.info("%s already holds this corpus (%s); nothing done", summary["out"], pairs)
    else:
        log.info("wrote %s (%s) in %.1f s", summary["out"], pairs, time.time() - start)
    for lang, splits in summary["stats"].items():
        for split, st in splits.items():
            log.info("%s %-5s %5d clips from %3d speakers: %.3f h of audio",
                     lang, split, st["utterances"], st["speakers"], st["hours"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
