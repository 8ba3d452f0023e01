"""Decoding throughput: ESPnet's one-utterance beam search vs utterance-batched search.

On a trained experiment's test set (the demo's by default: run egs2/mini_st/st1
first), beam 5 as the demo's decode config: batch 1 is ESPnet's path
(`Speech2Text`, what stage 12 runs with --batch_size 1), batched is what
stage 12 runs with --batch_size N (`batch_encode.encode_batch` +
`batch_beam_search.UtteranceBatchBeamSearch`) at --batch_sizes (8 16 32), all in
this process on the same model, utterances in the test set's order; each setting
is warmed up once, then timed --rounds times (the median is reported). Reports
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
    p.add_argument("--rounds", type=int, default=3, help="timed runs of each setting (median)")
    p.add_argument("--out", default=None)
    args = p.parse_args()

    import sacrebleu
    import soundfile
    import torch

    from espnet_mtl.inference.batch_beam_search import UtteranceBatchBeamSearch
    from espnet_mtl.inference.batch_encode import encode_batch
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
    search = UtteranceBatchBeamSearch(model.decoder, model.sos, model.eos, args.beam_size)

    def espnet_path():
        return [s2t(w)[0][0] for w in waves]

    def batched(bs):
        hyps = []
        for i in range(0, len(waves), bs):
            enc, lens = encode_batch(model, waves[i: i + bs])
            hyps += [text_of(h[0].yseq) for h in search(enc, lens)]
        return hyps

    def timed(decode):
        """(median seconds of --rounds runs, hypotheses), after an untimed warm-up."""
        hyps, times = decode(), []
        for _ in range(args.rounds):
            sync()
            t = time.perf_counter()
            decode()
            sync()
            times.append(time.perf_counter() - t)
        return sorted(times)[len(times) // 2], hyps

    def row(elapsed, hyps):
        return dict(seconds=round(elapsed, 3), utt_per_s=round(len(waves) / elapsed, 2),
                    rtf=round(elapsed / audio_s, 4),
                    bleu=round(sacrebleu.corpus_bleu(hyps, [ref_list]).score, 2))

    base_s, base = timed(espnet_path)
    results = {"1 (ESPnet)": row(base_s, base)}
    print(1, results["1 (ESPnet)"], file=sys.stderr)
    for bs in args.batch_sizes:
        elapsed, hyps = timed(lambda: batched(bs))
        results[str(bs)] = dict(row(elapsed, hyps), identical_to_batch_1=hyps == base,
                                speedup=round(base_s / elapsed, 2))
        print(bs, results[str(bs)], file=sys.stderr)
    out = {"exp": args.exp, "utterances": len(waves), "audio_s": round(audio_s, 1),
           "beam_size": args.beam_size, "rounds": args.rounds,
           "threads": torch.get_num_threads(), "device": args.device, "results": results,
           "load_before": load_before, "load_after": os.getloadavg()}
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
        plot(results, Path(args.out).with_suffix(".png"), args.device)


def plot(results: dict, path: Path, device: str) -> None:
    """Utterances/s against the batch size, ESPnet's batch-1 path as the reference line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [k for k in results if k.isdigit()]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([int(k) for k in sizes], [results[k]["utt_per_s"] for k in sizes], "o-",
            label="utterance-batched search")
    base = results["1 (ESPnet)"]["utt_per_s"]
    ax.axhline(base, color="gray", ls="--", label="ESPnet, one utterance at a time")
    for k in sizes:
        ax.annotate(f"{results[k]['speedup']}x", (int(k), results[k]["utt_per_s"]),
                    textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set_xscale("log", base=2)
    ax.set_xticks([int(k) for k in sizes], sizes)
    ax.set_xlabel("batch size (utterances)")
    ax.set_ylabel("utterances / s")
    ax.set_ylim(0, 1.15 * max(results[k]["utt_per_s"] for k in sizes))
    ax.set_title(f"Decoding throughput, beam 5, {device}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
