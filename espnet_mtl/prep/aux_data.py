"""Auxiliary training data for multi-task models: ASR-only speech and MT-only bitext.

st.sh's `--aux_asr_sets` and `--aux_mt_sets` name the data; the stages use this module:

- stage 1 (`prepare`): each spec is prepared by its corpus reader and the writer into
  `data/aux_{asr,mt}.<i>`, then all ASR parts are combined into `data/aux_asr`
  and all MT parts into `data/aux_mt`;
- stage 3 formats `data/aux_asr` like any speech set (not speed-perturbed);
- stage 4 drops examples whose model-side text is empty after normalisation
  (e.g. a line that was only "(Applause)"): `data_dir filter` for ASR data,
  `filter_text` here for MT data;
- stage 10 (`write_driver_shapes`): ESPnet's collect_stats needs speech in every
  example, so the shape files of the auxiliary sets (speech length, token counts
  with the recipe's SentencePiece models) are written here, named like the ST
  shape files so that mixed-source training pairs them with their fold lengths;
- stage 11 (`train_args`): the training options that name those sets and shape
  files. Which files each kind has and what its shape files are called is one
  table (`DriverLayout.fields`), read by both stages.

Specs (one word each, space-separated in the st.sh option):

    librispeech:<subset>[,<subset>...]     LibriSpeech under roots["librispeech"] (English;
                                           the CLI takes it from $LIBRISPEECH)
    tedlium3:<split>[:<layout>]            TED-LIUM 3 under roots["tedlium3"] (English; from
                                           $TEDLIUM3); layout
                                           legacy (default), speaker-adaptation or data
    bitext:<prefix>                        <prefix>.<src_lang> and <prefix>.<tgt_lang>
    dir:<path>                             an already prepared data dir (ASR: wav.scp,
                                           utt2spk, text.*.<src>; MT: text.*.<src|tgt>)
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from espnet_mtl.corpora import prepare as prepare_corpus
from espnet_mtl.corpora.bitext import BitextError
from espnet_mtl.corpora.librispeech import LibriSpeechError
from espnet_mtl.corpora.tedlium3 import TedliumError
from espnet_mtl.corpora.writer import write_tables
from espnet_mtl.prep.datadir import DataDirError, combine_data_dirs, validate_data_dir
from espnet_mtl.fileio import TableError, read_table, write_table
from espnet_mtl.prep.st_stats import count_lines
from espnet_mtl.prep.text_norm import CASES

log = logging.getLogger(__name__)

ASR_CORPORA = ("librispeech", "tedlium3", "dir")
MT_CORPORA = ("bitext", "dir")
# Corpora whose speech is in one language only.
CORPUS_LANG = {"librispeech": "en", "tedlium3": "en"}
# What a corpus's preparation raises for bad input (the CLIs' expected errors).
CORPUS_ERRORS = (LibriSpeechError, TedliumError, BitextError, DataDirError, TableError, OSError)


class AuxDataError(ValueError):
    """A bad auxiliary-data spec or data dir; says which and what to do."""


def _parse_spec(spec: str, kind: str) -> tuple[str, str]:
    corpus, sep, arg = spec.partition(":")
    known = ASR_CORPORA if kind == "asr" else MT_CORPORA
    if not sep or not arg or corpus not in known:
        examples = ("librispeech:train-clean-100,train-clean-360 tedlium3:train dir:<path>"
                    if kind == "asr" else "bitext:/data/wmt/europarl-v7.de-en dir:<path>")
        raise AuxDataError(f"--aux_{kind}_sets: '{spec}' is not <corpus>:<argument> with corpus "
                           f"one of {', '.join(known)} (examples: {examples})")
    return corpus, arg


# The corpus root each spec needs, and the db.sh variable that names it.
ROOT_VARS = {"librispeech": "LIBRISPEECH", "tedlium3": "TEDLIUM3"}


def roots_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Corpus roots from the db.sh variables (empty ones left out), for `prepare`'s `roots`."""
    environ = os.environ if environ is None else environ
    return {corpus: environ[var] for corpus, var in ROOT_VARS.items() if environ.get(var)}


def _root(roots: Mapping[str, str], corpus: str) -> str:
    root = roots.get(corpus, "")
    if not root:
        raise AuxDataError(f"{corpus} auxiliary data: {ROOT_VARS[corpus]} is not set; set it in "
                           f"db.sh (or export it) to the directory the corpus was unpacked in")
    return root


def _bitext_files(prefix: str, src_lang: str, tgt_lang: str) -> tuple[str, str]:
    """<prefix>.<src_lang> and <prefix>.<tgt_lang>, or their .gz when one side is only gzipped."""
    src, tgt = f"{prefix}.{src_lang}", f"{prefix}.{tgt_lang}"
    for path in (src, tgt):
        if not Path(path).is_file() and Path(path + ".gz").is_file():
            return src + ".gz", tgt + ".gz"
    return src, tgt


def _prepare_one(kind: str, spec: str, out: Path, src_lang: str, tgt_lang: str,
                 nj: int, roots: Mapping[str, str]) -> Path:
    """Prepare one spec into `out` (a data dir); returns the dir to combine."""
    corpus, arg = _parse_spec(spec, kind)
    lang = CORPUS_LANG.get(corpus)
    if lang and lang != src_lang:
        raise AuxDataError(f"--aux_{kind}_sets {spec}: {corpus} is {lang} speech, but the "
                           f"source language is {src_lang}; auxiliary ASR data must be "
                           f"in the source language")
    if corpus == "dir":
        if not Path(arg).is_dir():
            raise AuxDataError(f"--aux_{kind}_sets {spec}: no data directory at {arg}")
        return Path(arg)
    try:
        if corpus == "librispeech":
            prepare_corpus.librispeech_dir(_root(roots, corpus), arg, out.parent, out.name,
                                           lang=src_lang, nj=nj)
        elif corpus == "tedlium3":
            split, _, layout = arg.partition(":")
            prepare_corpus.tedlium3_dir(_root(roots, corpus), split, out.parent, out.name,
                                        layout=layout or "legacy", nj=nj)
        elif corpus == "bitext":
            src, tgt = _bitext_files(arg, src_lang, tgt_lang)
            prepare_corpus.bitext_dir(src, tgt, src_lang, tgt_lang, out.parent, out.name, nj=nj)
    except CORPUS_ERRORS as e:
        # The corpus's own message (naming file and line), and which spec it came from.
        raise AuxDataError(f"preparing {spec} failed: {e}") from e
    return out


def _text_names(lang: str) -> list[str]:
    return [f"text.{case}.{lang}" for case in CASES]


def _combine_text_dirs(dst: Path, srcs: list[Path], names: list[str]) -> int:
    """Union of text-only (MT) dirs; every dir must hold every file in `names`."""
    merged: dict[str, dict[str, str]] = {n: {} for n in names}
    owner: dict[str, Path] = {}
    for src in srcs:
        tables = {}
        for name in names:
            if not (src / name).is_file():
                raise AuxDataError(f"{src / name}: missing; an MT data dir needs "
                                   f"{', '.join(names)}")
            tables[name] = read_table(src / name)
        keys = set(tables[names[0]])
        for name in names[1:]:
            if set(tables[name]) != keys:
                raise AuxDataError(f"{src}: {name} and {names[0]} hold different utterance ids")
        for key in keys:
            if key in owner:
                raise AuxDataError(f"utterance id '{key}' is in both {owner[key]} and {src}")
            owner[key] = src
        for name in names:
            merged[name].update(tables[name])
    write_tables(dst, merged)
    return len(owner)


def prepare(kind: str, specs: list[str], out: str | os.PathLike, src_lang: str,
            tgt_lang: str, nj: int = 1, roots: Mapping[str, str] | None = None) -> Path:
    """Stage 1: prepare every spec and combine them into `<out>/aux_<kind>`.

    `roots`: corpus name -> the directory it was unpacked in (`librispeech`,
    `tedlium3`; see `roots_from_env`), needed only by the specs that name them.
    """
    if kind not in ("asr", "mt"):
        raise AuxDataError(f"kind must be asr or mt, got {kind!r}")
    if not specs:
        raise AuxDataError(f"--aux_{kind}_sets is empty")
    out = Path(out)
    for spec in specs:  # refuse a bad spec before preparing anything
        _parse_spec(spec, kind)
    parts = [_prepare_one(kind, spec, out / f"aux_{kind}.{i}", src_lang, tgt_lang, nj,
                          roots or {})
             for i, spec in enumerate(specs, 1)]
    dst = out / f"aux_{kind}"
    if kind == "asr":
        for part in parts:
            validate_data_dir(part)
            missing = [n for n in _text_names(src_lang) if not (part / n).is_file()]
            if missing:
                raise AuxDataError(f"{part}: ASR data needs {', '.join(missing)} "
                                   f"(transcripts in the source language {src_lang})")
        if len(parts) > 1 and any((p / "segments").is_file() for p in parts):
            for part in parts:  # combining with segmented data needs clip durations
                if not (part / "segments").is_file():
                    _write_reco2dur(part)
        shutil.rmtree(dst, ignore_errors=True)
        n = combine_data_dirs(dst, parts)
    else:
        n = _combine_text_dirs(dst, parts, _text_names(src_lang) + _text_names(tgt_lang))
    log.info("auxiliary %s data: %d examples from %d source(s) -> %s", kind.upper(), n,
             len(parts), dst)
    return dst


def _write_reco2dur(data_dir: Path) -> None:
    """Clip durations from the audio headers (no decoding), so that whole-clip
    data (LibriSpeech) can be combined with segmented data (TED-LIUM)."""
    import soundfile as sf
    from tqdm import tqdm

    if (data_dir / "reco2dur").is_file():
        return
    wavs = read_table(data_dir / "wav.scp")
    durations = {}
    for rec, path in tqdm(wavs.items(), desc=f"durations of {data_dir.name}", mininterval=10,
                          disable=len(wavs) < 10000):
        try:
            durations[rec] = f"{sf.info(path).duration:.3f}"
        except Exception as e:  # soundfile raises several types for bad files
            raise AuxDataError(f"{data_dir / 'wav.scp'}: recording {rec}: cannot read the "
                               f"duration of {path} ({e}); fix or remove the file") from None
    write_table(data_dir / "reco2dur", durations)


def filter_text(src: str | os.PathLike, dst: str | os.PathLike, names: list[str]) -> dict:
    """Stage 4 for an MT-only dir: keep examples whose `names` texts are all non-empty.

    Every file of `src` is a text table over the same ids (what `prepare`
    writes); `dst` is written next to its final place and renamed into it.
    (ASR-only dirs are filtered by `data_dir filter`, like the ST sets.)
    """
    src, dst = Path(src), Path(dst)
    tables = {p.name: read_table(p) for p in sorted(src.iterdir())
              if p.is_file() and not p.name.startswith(".")}
    for name in names:
        if name not in tables:
            raise AuxDataError(f"{src / name}: missing")
    ids = set(tables[names[0]])
    for name, table in tables.items():
        if set(table) != ids:
            raise AuxDataError(f"{src}: {name} and {names[0]} hold different utterance ids")
    keep = {k for k in ids if all(tables[n][k].strip() for n in names)}
    if not keep:
        raise AuxDataError(f"{src}: no example has non-empty {' and '.join(names)}")
    write_tables(dst, {name: {k: v for k, v in table.items() if k in keep}
                       for name, table in tables.items()})
    dropped = len(ids) - len(keep)
    log.info("%s -> %s: kept %d, dropped %d with empty %s", src, dst, len(keep), dropped,
             " or ".join(names))
    return {"kept": len(keep), "dropped": dropped}


def _token_counts(text_file: Path, bpemodel: str) -> dict[str, int]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=bpemodel)
    table = read_table(text_file)
    keys = list(table)
    pieces = sp.encode([table[k] for k in keys], out_type=int)
    return {k: len(p) for k, p in zip(keys, pieces)}


def write_shapes(data_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                 texts: list[tuple[str, str, str, int]], speech: str | None = None,
                 n_mels: int = 80) -> Path:
    """Stage 10: ESPnet shape files for an auxiliary set.

    `texts`: (text file name, shape name, SentencePiece model, vocabulary size),
    written as `<out_dir>/<shape name>` with lines `<utt> <tokens>,<vocab>`.
    `speech`: "raw" (utt2num_samples -> `speech_shape` `<utt> <samples>`) or
    "fbank" (utt2num_frames -> `<utt> <frames>,<n_mels>`), or None for text only.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys: set[str] | None = None
    if speech is not None:
        name = {"raw": "utt2num_samples", "fbank": "utt2num_frames"}.get(speech)
        if name is None:
            raise AuxDataError(f"speech shape kind must be raw or fbank, got {speech!r}")
        if not (data_dir / name).is_file():
            raise AuxDataError(f"{data_dir / name}: missing; run stage 3 (audio formatting) "
                               f"for {data_dir.name}")
        lengths = read_table(data_dir / name)
        keys = set(lengths)
        write_table(out_dir / "speech_shape",
                    {k: v if speech == "raw" else f"{v},{n_mels}" for k, v in lengths.items()})
    for text_name, shape_name, bpemodel, vocab in texts:
        counts = _token_counts(data_dir / text_name, bpemodel)
        if keys is not None and set(counts) != keys:
            raise DataDirError(f"{data_dir}: {text_name} and the audio hold different utterances")
        keys = set(counts)
        write_table(out_dir / shape_name, {k: f"{n},{vocab}" for k, n in counts.items()})
    log.info("wrote shape files for %d examples of %s -> %s", len(keys or ()), data_dir, out_dir)
    return out_dir


def token_model(token_dir: str | os.PathLike) -> tuple[str, int]:
    """A stage-5 token dir -> (its SentencePiece model, its vocabulary size)."""
    token_dir = Path(token_dir)
    tokens = token_dir / "tokens.txt"
    if not tokens.is_file():
        raise AuxDataError(f"{tokens}: missing; run stage 5 (token lists) first")
    return str(token_dir / "bpe.model"), count_lines(tokens)


@dataclass(frozen=True)
class Field:
    """One input of an auxiliary set, as ESPnet's data and shape options name it."""

    file: str   # in the set's data dir, e.g. text.lc.rm.en
    name: str   # ESPnet's data name: speech, src_text or text
    type: str   # ESPnet's file type: sound, kaldi_ark or text
    shape: str  # its shape file, named like the ST one: speech_shape, src_text_shape.bpe


@dataclass(frozen=True)
class DriverLayout:
    """Where st.sh keeps the auxiliary sets after stage 4 and their shape files.

    `<data_feats>/aux_<kind>` holds a set, `<stats_dir>/aux_<kind>` its shape
    files; the other names are the driver's (`src_text_name` = text.<case>.<lang>,
    `speech_scp`/`speech_type` = wav.scp/sound or feats.scp/kaldi_ark).
    """

    data_feats: str
    stats_dir: str
    src_text_name: str
    tgt_text_name: str
    src_token_type: str = "bpe"
    tgt_token_type: str = "bpe"
    speech_scp: str = "wav.scp"
    speech_type: str = "sound"

    def fields(self, kind: str) -> list[Field]:
        """ASR data: speech and its transcript; MT data: transcript and translation."""
        src = Field(self.src_text_name, "src_text", "text", f"src_text_shape.{self.src_token_type}")
        if kind == "asr":
            return [Field(self.speech_scp, "speech", self.speech_type, "speech_shape"), src]
        if kind == "mt":
            return [src, Field(self.tgt_text_name, "text", "text",
                               f"text_shape.{self.tgt_token_type}")]
        raise AuxDataError(f"kind must be asr or mt, got {kind!r}")

    def data_dir(self, kind: str) -> str:
        return f"{self.data_feats}/aux_{kind}"

    def shape_dir(self, kind: str) -> str:
        return f"{self.stats_dir}/aux_{kind}"


def write_driver_shapes(layout: DriverLayout, kinds: list[str], *, feats_type: str,
                        n_mels: int, token_dirs: Mapping[str, str | os.PathLike]) -> None:
    """Stage 10: the shape files of each auxiliary set in `kinds` (see `write_shapes`).

    `token_dirs`: ESPnet text name (`src_text`, `text`) -> its stage-5 token dir.
    """
    for kind in kinds:
        fields = layout.fields(kind)
        texts = [(f.file, f.shape, *token_model(token_dirs[f.name]))
                 for f in fields if f.name != "speech"]
        speech = feats_type if any(f.name == "speech" for f in fields) else None
        write_shapes(layout.data_dir(kind), layout.shape_dir(kind), texts=texts, speech=speech,
                     n_mels=n_mels)


def train_args(layout: DriverLayout, kinds: list[str], mixing: str = "ratio",
               ratio: str = "") -> list[str]:
    """Stage 11: the training options that add the auxiliary sets in `kinds` (asr, mt).

    Per kind its data files and shape files (`--train_<kind>_data_path_and_name_and_type`,
    `--train_<kind>_shape_file`), then `--mixed_source_mode` and, when given,
    `--mixed_source_ratio`. Empty `kinds`: no options. A missing shape dir is
    refused (stage 10 did not write it).
    """
    args: list[str] = []
    for kind in kinds:
        fields = layout.fields(kind)
        for f in fields:
            args += [f"--train_{kind}_data_path_and_name_and_type",
                     f"{layout.data_dir(kind)}/{f.file},{f.name},{f.type}"]
        for f in fields:
            args += [f"--train_{kind}_shape_file", f"{layout.shape_dir(kind)}/{f.shape}"]
    for kind in kinds:
        if not Path(layout.shape_dir(kind)).is_dir():
            raise AuxDataError(f"no {layout.shape_dir(kind)}: rerun stages 1-10 with "
                               f"--aux_{kind}_sets")
    if kinds:
        args += ["--mixed_source_mode", mixing]
        if ratio:
            args += ["--mixed_source_ratio", ratio]
    return args
