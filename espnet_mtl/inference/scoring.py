"""Stage 13: sacreBLEU scoring of detokenized hypotheses, and RESULTS.md.

Also scores the analysis paths of an `mtl_st` model (st.sh
`--extra_decode_paths`): the MT path with the same BLEU, the ASR path with
word and character error rates against the source transcript.

Scores follow the ST convention (corpora.md): case-sensitive BLEU (13a, or
the language's own tokenizer for zh / ja), chrF and TER on detokenized text,
each with its sacreBLEU signature, plus ESPnet's case-insensitive,
punctuation-free BLEU. Removing `(Applause)`-style tags is a flag, off by
default, recorded in the result.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from espnet_mtl.fileio import atomic_open, read_table

# sacreBLEU tokenizer per target language; 13a otherwise.
BLEU_TOKENIZERS = {"zh": "zh", "ja": "ja-mecab", "ko": "ko-mecab"}


class ScoringError(ValueError):
    pass


def detokenize(text: str, lang: str, moses: bool = False) -> str:
    """Hypotheses arrive SentencePiece-decoded from ESPnet; undo Moses
    tokenization too when the references were Moses-tokenized."""
    if not moses:
        return text.strip()
    from sacremoses import MosesDetokenizer

    return MosesDetokenizer(lang=lang).detokenize(text.split())


def _aligned(hyp_file: str, ref_file: str) -> tuple[list[str], list[str], list[str]]:
    hyps, refs = read_table(hyp_file), read_table(ref_file)
    missing = [k for k in refs if k not in hyps]
    if missing:
        raise ScoringError(
            f"{hyp_file}: no hypothesis for {len(missing)} of {len(refs)} reference utterances "
            f"(first: {missing[0]}); decoding is incomplete, rerun stage 12")
    extra = [k for k in hyps if k not in refs]
    if extra:
        raise ScoringError(f"{hyp_file}: hypothesis for {extra[0]} has no reference in {ref_file}")
    keys = list(refs)
    return keys, [hyps[k] for k in keys], [refs[k] for k in keys]


def score_st(hyp_file: str | os.PathLike, ref_file: str | os.PathLike, tgt_lang: str, *,
             remove_tags: bool = False, moses_detok: bool = False) -> dict:
    """Score one test set; returns the result dict written to result.json."""
    from sacrebleu.metrics import BLEU, CHRF, TER

    from espnet_mtl.prep import text_norm

    keys, hyps, refs = _aligned(str(hyp_file), str(ref_file))
    hyps = [detokenize(h, tgt_lang, moses_detok) for h in hyps]
    if remove_tags:
        hyps = [text_norm.remove_tags(h) for h in hyps]
        refs = [text_norm.remove_tags(r) for r in refs]
    tokenize = BLEU_TOKENIZERS.get(tgt_lang.split("-")[0], "13a")
    bleu = BLEU(tokenize=tokenize)
    chrf, ter = CHRF(), TER()
    bleu_score = bleu.corpus_score(hyps, [refs])
    # ESPnet's second number: lowercase, punctuation removed on both sides.
    lc_rm = BLEU(tokenize=tokenize, lowercase=True)
    hyps_rm = [text_norm.normalize(h, tgt_lang)["lc.rm"] for h in hyps]
    refs_rm = [text_norm.normalize(r, tgt_lang)["lc.rm"] for r in refs]
    lc_rm_score = lc_rm.corpus_score(hyps_rm, [refs_rm])
    return {
        "bleu": round(bleu_score.score, 2),
        "bleu_signature": str(bleu.get_signature()),
        "bleu_detail": str(bleu_score),
        "chrf": round(chrf.corpus_score(hyps, [refs]).score, 2),
        "chrf_signature": str(chrf.get_signature()),
        "ter": round(ter.corpus_score(hyps, [refs]).score, 2),
        "ter_signature": str(ter.get_signature()),
        "bleu_lc_rm": round(lc_rm_score.score, 2),
        "bleu_lc_rm_signature": str(lc_rm.get_signature()) + "|punct:removed",
        "num_sentences": len(keys),
        "remove_tags": remove_tags,
        "hyp_file": str(hyp_file),
        "ref_file": str(ref_file),
    }


def score_asr(hyp_file: str | os.PathLike, ref_file: str | os.PathLike) -> dict:
    """WER and CER (edit distance over words / characters without spaces)."""
    import editdistance

    keys, hyps, refs = _aligned(str(hyp_file), str(ref_file))
    totals = {"word": [0, 0], "char": [0, 0]}
    for hyp, ref in zip(hyps, refs):
        for unit, (h, r) in (("word", (hyp.split(), ref.split())),
                             ("char", (list("".join(hyp.split())), list("".join(ref.split()))))):
            totals[unit][0] += editdistance.eval(h, r)
            totals[unit][1] += len(r)
    if totals["word"][1] == 0:
        raise ScoringError(f"{ref_file}: every reference is empty; nothing to score")
    return {
        "wer": round(100.0 * totals["word"][0] / totals["word"][1], 2),
        "cer": round(100.0 * totals["char"][0] / max(totals["char"][1], 1), 2),
        "word_errors": totals["word"][0], "ref_words": totals["word"][1],
        "num_sentences": len(keys), "hyp_file": str(hyp_file), "ref_file": str(ref_file),
    }


RESULT_FILES = ("result.json", "result.txt")


def remove_result(out_dir: str | os.PathLike) -> None:
    """Delete a previous result of `out_dir` before rescoring it: if the new scoring
    fails, no old result.json is left to look current (and RESULTS.md, rebuilt
    from the result.json files present, drops its row)."""
    for name in RESULT_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(Path(out_dir) / name)


def write_result(result: dict, out_dir: str | os.PathLike) -> Path:
    """result.json, and result.txt with the headline numbers (BLEU/chrF/TER or WER/CER)."""
    out = Path(out_dir) / "result.json"
    with atomic_open(out) as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
        f.write("\n")
    if "wer" in result:
        summary = (f"WER {result['wer']} ({result['word_errors']}/{result['ref_words']})  "
                   f"CER {result['cer']}\n")
    else:
        summary = (f"BLEU {result['bleu']}  ({result['bleu_signature']})\n"
                   f"{result['bleu_detail']}\n"
                   f"chrF {result['chrf']}  ({result['chrf_signature']})\n"
                   f"TER {result['ter']}  ({result['ter_signature']})\n"
                   f"BLEU lc.rm {result['bleu_lc_rm']}  ({result['bleu_lc_rm_signature']})\n")
    with atomic_open(Path(out_dir) / "result.txt") as f:
        f.write(summary)
    return out


def environment() -> list[str]:
    """ESPnet's RESULTS.md header: date, versions and the code's git commit."""
    import platform
    import subprocess
    import time

    import espnet
    import torch

    root = Path(__file__).resolve().parents[2]
    commit = date = "unknown (not a git checkout)"
    try:
        commit, date = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%H%n%cd"], capture_output=True,
            text=True, check=True).stdout.split("\n")[:2]
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError, ValueError):
        pass
    return ["## Environments", f"- date: `{time.strftime('%a %b %d %H:%M:%S %Z %Y')}`",
            f"- python version: `{platform.python_version()}`",
            f"- espnet version: `espnet {espnet.__version__}`",
            f"- pytorch version: `pytorch {torch.__version__}`",
            f"- espnet_mtl git hash: `{commit}`", f"  - Commit date: `{date}`", ""]


def write_results_md(st_exp: str | os.PathLike) -> Path:
    """Collect every <st_exp>/<inference_tag>/<test_set>/score_bleu/result.json (and
    the analysis paths' ones); name the decoded sets that have no result."""
    st_exp = Path(st_exp)
    rows, signatures = [], set()
    for path in sorted(st_exp.glob("*/*/score_bleu/result.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        tag, test_set = path.parts[-4], path.parts[-3]
        rows.append(f"| {tag} | {test_set} | {r['bleu']} | {r['chrf']} | {r['ter']} | "
                    f"{r['bleu_lc_rm']} | {r['num_sentences']} | {r['remove_tags']} |")
        signatures.update((r["bleu_signature"], r["chrf_signature"], r["ter_signature"]))
    # Analysis paths of an mtl_st model (st.sh --extra_decode_paths)
    for path in sorted(st_exp.glob("*/*/mt_path/score_bleu/result.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        tag, test_set = path.parts[-5], path.parts[-4]
        rows.append(f"| {tag} | {test_set} (MT path: transcript in) | {r['bleu']} | "
                    f"{r['chrf']} | {r['ter']} | {r['bleu_lc_rm']} | {r['num_sentences']} | "
                    f"{r['remove_tags']} |")
        signatures.update((r["bleu_signature"], r["chrf_signature"], r["ter_signature"]))
    asr_rows = []
    for path in sorted(st_exp.glob("*/*/asr_path/score_wer/result.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        asr_rows.append(f"| {path.parts[-5]} | {path.parts[-4]} | {r['wer']} | {r['cer']} | "
                        f"{r['num_sentences']} |")
    if asr_rows:
        asr_rows = ["", "ASR path (source transcript, as the training data's source text):",
                    "", "| inference | test set | WER | CER | sentences |", "|---|---|---|---|---|",
                    *asr_rows]
    # A decoded set without a result (its scoring failed or has not run) is named,
    # so that its missing row is not taken for the whole picture.
    unscored = [str(hyp.parent.relative_to(st_exp))
                for pattern, score_dir in (("*/*/text", "score_bleu"),
                                           ("*/*/mt_path/text", "score_bleu"),
                                           ("*/*/asr_path/text", "score_wer"))
                for hyp in sorted(st_exp.glob(pattern))
                if not (hyp.parent / score_dir / "result.json").is_file()]
    if unscored:
        unscored = ["", "Not scored (a hypothesis `text` but no result: stage 13 failed or "
                    "has not run): " + ", ".join(unscored)]
    lines = [f"# RESULTS: {st_exp.name}", "", *environment(),
             "Detokenized, case-sensitive sacreBLEU; `BLEU lc.rm` is lowercased and "
             "punctuation-free (ESPnet's second number).", "",
             "| inference | test set | BLEU | chrF | TER | BLEU lc.rm | sentences | tags removed |",
             "|---|---|---|---|---|---|---|---|", *rows, *asr_rows, *unscored,
             "", "Signatures:", "", *[f"- `{s}`" for s in sorted(signatures)], ""]
    out = st_exp / "RESULTS.md"
    with atomic_open(out) as f:
        f.write("\n".join(lines))
    return out
