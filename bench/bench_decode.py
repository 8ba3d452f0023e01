"""Decoding throughput: ESPnet's one-utterance beam search vs utterance-batched search.

On a trained experiment's test set (the demo's by default: run egs2/mini_st/st1
first), beam 5 as the demo's decode config: batch 1 is ESPnet's path
(`Speech2Text`, what stage 12 runs with --batch_size 1), batched is
`espnet_mtl.inference.batch_beam_search` at --batch_sizes (8 16 32), all in this
process on the same model, utterances in the test set's order. Reports
utterances/s, the real-time factor (decoding seconds / audio seconds), sacreBLEU of
each run against the references, and whether the hypotheses are identical to
batch 1's.

    python bench/bench_decode.py --exp egs2/mini_st/st1/exp/st_train_st_raw_en_de_bpe_tc300 \\
        --data egs2/mini_st/st1/dump/raw/tst-COMMON.en-de [--device cuda] [--out FILE]

The same script on a GPU (`--device cuda`) is the device measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", required=True)
    p.add_argument("--data", required=True, help="a dumped test set (wav.scp, text.tc.<tgt>)")
    p.add_argument("--tgt_lang", default="de")
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--beam_size", type=int, default=5)
    p.add_argument("--limit", type=int, default=0, help="first N utterances (0: all)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None)
    args = p.parse_args()

    import sacrebleu
    import soundfile
    import torch

    from espnet_mtl.inference.batch_beam_search import UtteranceBatchBeamSearch, encode_each
    from espnet_mtl.inference.pretrained import load_pretrained

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    load_before = os.getloadavg()
    data = Path(args.data)
    scp = [line.split(maxsplit=1) for line in (data / "wav.scp").read_text().splitlines()]
    if args.limit:
        scp = scp[: args.limit]
    refs = dict(line.split(maxsplit=1) for line in
                (data / f"text.tc.{args.tgt_lang}").read_text().splitlines())
    waves = [soundfile.read(path if os.path.isabs(path) else Path.cwd() / path,
                            dtype="float32")[0] for _, path in scp]
    audio_s = sum(len(w) for w in waves) / 16000
    s2t = load_pretrained(args.exp, beam_size=args.beam_size, ctc_weight=0.0, lm_weight=0.0,
                          penalty=0.0, device=args.device)
    model = s2t.st_model
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    def text_of(yseq):
        ids = [t for t in yseq[1:-1].tolist() if t != 0]
        return s2t.tokenizer.tokens2text(s2t.converter.ids2tokens(ids))

    ref_list = [refs[u] for u, _ in scp]
    results = {}
    sync()
    t = time.perf_counter()
    base = [s2t(w)[0][0] for w in waves]
    sync()
    elapsed = time.perf_counter() - t
    results["1 (ESPnet)"] = dict(seconds=round(elapsed, 2), utt_per_s=round(len(waves) / elapsed, 2),
                                 rtf=round(elapsed / audio_s, 4),
                                 bleu=round(sacrebleu.corpus_bleu(base, [ref_list]).score, 2))
    search = UtteranceBatchBeamSearch(model.decoder, model.sos, model.eos, args.beam_size)
    for bs in args.batch_sizes:
        hyps = []
        sync()
        t = time.perf_counter()
        for i in range(0, len(waves), bs):
            enc, lens = encode_each(model, waves[i: i + bs])
            hyps += [text_of(h[0].yseq) for h in search(enc, lens)]
        sync()
        elapsed = time.perf_counter() - t
        results[str(bs)] = dict(
            seconds=round(elapsed, 2), utt_per_s=round(len(waves) / elapsed, 2),
            rtf=round(elapsed / audio_s, 4),
            bleu=round(sacrebleu.corpus_bleu(hyps, [ref_list]).score, 2),
            identical_to_batch_1=hyps == base,
            speedup=round(results["1 (ESPnet)"]["seconds"] / elapsed, 2))
        print(bs, results[str(bs)], file=sys.stderr)
    out = {"exp": args.exp, "utterances": len(waves), "audio_s": round(audio_s, 1),
           "beam_size": args.beam_size, "device": args.device, "results": results,
           "load_before": load_before, "load_after": os.getloadavg()}
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
