"""Kaldi/ESPnet data directories: validate, fix, copy, subset, split, combine, filter.

A data dir is a folder of small tables (`<key> <value...>` lines sorted by key
in C-locale byte order).  What a table is keyed on follows from its name:

* per utterance: `utt2spk`, `segments`, `text`, `text.<case>.<lang>`, `utt2*`,
  `feats.scp`, `vad.scp`;
* per recording: `wav.scp`, `reco2*` (without `segments` the recording id IS the
  utterance id, so these are keyed by utterance too);
* per speaker: `spk2*` (e.g. `spk2gender`), `cmvn.scp`; `spk2utt` is always
  derived from `utt2spk` and regenerated on every write;
* anything else (e.g. `feats_type`) is a plain file, copied verbatim.

Every operation loads the whole dir into memory (a 230k-utterance dir is a few
hundred MB at most), transforms it, and writes every table atomically.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from espnet_mtl.fileio import TableError, atomic_open, iter_table, read_table

log = logging.getLogger(__name__)

SPLIT_SUFFIX = {"utt": "", "spk": "spk", "recording": "rec"}
_SPLIT_STAMP = ".split_done"  # hidden, so loaders ignore it


class DataDirError(ValueError):
    """A malformed data dir or an impossible operation; the message names the file."""


def _kind(name: str) -> str | None:
    """What a top-level file of a data dir is keyed on (None: not part of the dir)."""
    if name.startswith(".") or name.endswith((".tmp", "~")):
        return None  # atomic_open's temporaries, stamps, editor backups
    if name == "overruns":
        return None  # stage 3's report of segments cut or dropped at the audio end: names dropped utterances
    if name in ("utt2spk", "segments", "text", "feats.scp", "vad.scp") or name.startswith(
        ("text.", "utt2")
    ):
        return "utt"
    if name == "wav.scp" or name.startswith("reco2"):
        return "rec"
    if name == "spk2utt":
        return "derived"
    if name == "cmvn.scp" or name.startswith("spk2"):
        return "spk"
    return "plain"


def _is_text(name: str) -> bool:
    return name == "text" or name.startswith("text.")


def _read(path: Path) -> dict[str, str]:
    try:
        return read_table(path)
    except TableError as e:
        raise DataDirError(str(e)) from None


def _format(table: dict[str, str]) -> bytes:
    # Python's str order equals the UTF-8 byte order of `LC_ALL=C sort`.
    return "".join([f"{k} {v}\n" if v else f"{k}\n" for k, v in sorted(table.items())]
                   ).encode("utf-8")


def _write_if_changed(path: Path, data: bytes) -> None:
    # Leaving identical files untouched keeps their mtime, so splits stay fresh.
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    with atomic_open(path, "wb") as f:
        f.write(data)


def _fmt_seconds(x: float) -> str:
    return f"{x:.6f}".rstrip("0").rstrip(".") or "0"


@dataclass
class DataDir:
    """A data dir held in memory: tables (key -> value) by file name and kind."""

    utt: dict[str, dict[str, str]] = field(default_factory=dict)
    rec: dict[str, dict[str, str]] = field(default_factory=dict)
    spk: dict[str, dict[str, str]] = field(default_factory=dict)
    plain: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike) -> DataDir:
        path = Path(path)
        if not path.is_dir():
            raise DataDirError(f"{path}: not a data directory")
        for required in ("wav.scp", "utt2spk"):
            if not (path / required).is_file():
                raise DataDirError(f"{path / required}: missing (every data dir needs it)")
        d = cls()
        for p in sorted(path.iterdir()):
            kind = _kind(p.name) if p.is_file() else None
            if kind in ("utt", "rec", "spk"):
                getattr(d, kind)[p.name] = _read(p)
            elif kind == "plain":
                d.plain[p.name] = p.read_bytes()
        return d

    @property
    def has_segments(self) -> bool:
        return "segments" in self.utt

    def utts(self) -> list[str]:
        return sorted(self.utt["utt2spk"])

    def utt2rec(self) -> dict[str, str]:
        if not self.has_segments:
            return {u: u for u in self.utt["utt2spk"]}
        return {u: (v.split(maxsplit=1) or [""])[0] for u, v in self.utt["segments"].items()}

    def check(self, where: Path) -> None:
        """Cheap consistency check before copy/subset/split/...; `validate` gives details."""
        hint = (f"; run `python -m espnet_mtl.bin.data_dir validate {where}` for details "
                f"or `... fix {where}` to repair")
        utts = self.utt["utt2spk"].keys()
        if not utts:
            raise DataDirError(f"{where / 'utt2spk'}: no utterances")
        tables = list(self.utt.items())
        if not self.has_segments:
            tables += list(self.rec.items())  # keyed by utterance
        for name, t in tables:
            if t.keys() != utts:
                k = min(t.keys() ^ utts)
                raise DataDirError(f"{where / name}: keys differ from utt2spk (e.g. '{k}'){hint}")
        if self.has_segments:
            recs = set(self.utt2rec().values())
            for name, t in self.rec.items():
                if not recs <= t.keys():
                    k = min(recs - t.keys())
                    raise DataDirError(f"{where / name}: recording '{k}' used in segments "
                                       f"is missing{hint}")
        spks = set(self.utt["utt2spk"].values())
        for name, t in self.spk.items():
            if not spks <= t.keys():
                k = min(spks - t.keys())
                raise DataDirError(f"{where / name}: speaker '{k}' is missing{hint}")

    def subset(self, keep: Iterable[str], utt2rec: dict[str, str] | None = None) -> DataDir:
        """Only the utterances `keep` (all in utt2spk), with their recordings and speakers.

        `utt2rec` may be passed in by callers that subset many times.
        """
        keep = list(keep)
        utt2spk = self.utt["utt2spk"]
        # Iterate over what is kept, not over whole tables: split calls this n times.
        out = DataDir(plain=dict(self.plain))
        for name, t in self.utt.items():
            out.utt[name] = {u: t[u] for u in keep if u in t}
        utt2rec = utt2rec if utt2rec is not None else self.utt2rec()
        recs = {utt2rec[u] for u in keep}
        for name, t in self.rec.items():
            out.rec[name] = {r: t[r] for r in recs if r in t}
        spks = {utt2spk[u] for u in keep}
        for name, t in self.spk.items():
            out.spk[name] = {s: t[s] for s in spks if s in t}
        return out

    def renamed(self, utt_fn: Callable[[str], str], spk_fn: Callable[[str], str],
                rec_fn: Callable[[str], str]) -> DataDir:
        """Every id mapped through its function, in keys and in values that hold ids."""
        if not self.has_segments:
            rec_fn = utt_fn  # recording ids are utterance ids
        out = DataDir(plain=dict(self.plain))
        for name, t in self.utt.items():
            if name == "utt2spk":
                out.utt[name] = {utt_fn(u): spk_fn(s) for u, s in t.items()}
            elif name == "segments":
                out.utt[name] = {}
                for u, v in t.items():
                    rec, times = (v.split(maxsplit=1) + [""])[:2]
                    out.utt[name][utt_fn(u)] = f"{rec_fn(rec)} {times}"
            else:
                out.utt[name] = {utt_fn(u): v for u, v in t.items()}
        for name, t in self.rec.items():
            out.rec[name] = {rec_fn(r): v for r, v in t.items()}
        for name, t in self.spk.items():
            out.spk[name] = {spk_fn(s): v for s, v in t.items()}
        return out

    def write(self, dst: str | os.PathLike) -> None:
        """Write every table sorted (atomically) and regenerate spk2utt."""
        dst = Path(dst)
        dst.mkdir(parents=True, exist_ok=True)
        spk2utt: dict[str, list[str]] = {}
        for u in self.utts():
            spk2utt.setdefault(self.utt["utt2spk"][u], []).append(u)
        outputs = {name: _format(t) for group in (self.utt, self.rec, self.spk)
                   for name, t in group.items()}
        outputs["spk2utt"] = _format({s: " ".join(us) for s, us in spk2utt.items()})
        outputs.update(self.plain)
        # A table left over in dst from an earlier run would make the dir inconsistent.
        for p in dst.iterdir():
            if p.is_file() and p.name not in outputs and _kind(p.name) in ("utt", "rec", "spk"):
                log.info("%s: removing stale table", p)
                p.unlink()
        for name, data in outputs.items():
            _write_if_changed(dst / name, data)


# --------------------------------------------------------------------------- validate


@dataclass
class _Table:
    path: Path
    lines: dict[str, int]  # key -> line number
    values: dict[str, str]


def _read_checked(path: Path, check_sorted: bool) -> _Table:
    lines: dict[str, int] = {}
    values: dict[str, str] = {}
    prev = None
    try:
        for lineno, key, value in iter_table(path):
            if key in lines:
                raise DataDirError(
                    f"{path}:{lineno}: duplicate key '{key}' (first on line {lines[key]})")
            if check_sorted and prev is not None and key < prev:
                raise DataDirError(
                    f"{path}:{lineno}: '{key}' comes after '{prev}': not sorted "
                    f"(LC_ALL=C sort order); `data_dir fix` sorts it")
            lines[key] = lineno
            values[key] = value
            prev = key
    except TableError as e:
        raise DataDirError(str(e)) from None
    return _Table(path, lines, values)


def _same_keys(ref: _Table, other: _Table, what: str) -> None:
    """Error at the first key present in only one of the two tables."""
    if ref.lines.keys() == other.lines.keys():
        return
    k = min(ref.lines.keys() ^ other.lines.keys())
    if k in other.lines:
        raise DataDirError(f"{other.path}:{other.lines[k]}: {what} '{k}' is not in "
                           f"{ref.path.name}")
    raise DataDirError(f"{ref.path}:{ref.lines[k]}: {what} '{k}' is missing from "
                       f"{other.path.name}")


def _check_numbers(t: _Table, convert: Callable[[str], float]) -> None:
    for key, value in t.values.items():
        try:
            ok = convert(value) >= 0
        except ValueError:
            ok = False
        if not ok:
            raise DataDirError(f"{t.path}:{t.lines[key]}: '{key}': expected a non-negative "
                               f"{convert.__name__}, got '{value}'")


def validate_data_dir(path: str | os.PathLike, *, need_text: bool = True,
                      check_sorted: bool = True) -> dict[str, int]:
    """Check a data dir; raise DataDirError naming file and line of the first problem.

    Returns counts: utterances, speakers, recordings, files (tables checked),
    warnings (logged, e.g. utterance ids that do not start with their speaker id).
    """
    path = Path(path)
    if not path.is_dir():
        raise DataDirError(f"{path}: not a data directory")
    for required in ("wav.scp", "utt2spk"):
        if not (path / required).is_file():
            raise DataDirError(f"{path / required}: missing (every data dir needs it)")
    tables: dict[str, _Table] = {}
    kinds: dict[str, str] = {}
    for p in sorted(path.iterdir()):
        kind = _kind(p.name) if p.is_file() else None
        if kind in ("utt", "rec", "spk", "derived"):
            tables[p.name] = _read_checked(p, check_sorted)
            kinds[p.name] = kind
    utt2spk = tables["utt2spk"]
    if not utt2spk.values:
        raise DataDirError(f"{utt2spk.path}: no utterances")
    if need_text and not any(_is_text(n) for n in tables):
        raise DataDirError(f"{path}: no text file (text or text.<case>.<lang>)")
    for u, s in utt2spk.values.items():
        if len(s.split()) != 1:
            raise DataDirError(f"{utt2spk.path}:{utt2spk.lines[u]}: utterance '{u}' needs "
                               f"exactly one speaker id, got '{s}'")

    has_segments = "segments" in tables
    for name, kind in kinds.items():
        if name != "utt2spk" and (kind == "utt" or (kind == "rec" and not has_segments)):
            _same_keys(utt2spk, tables[name], "utterance")

    wav = tables["wav.scp"]
    if has_segments:
        seg = tables["segments"]
        for u, v in seg.values.items():
            where = f"{seg.path}:{seg.lines[u]}: utterance '{u}'"
            fields = v.split()
            if len(fields) != 3:
                raise DataDirError(f"{where}: expected '<utt> <recording> <start> <end>'")
            rec = fields[0]
            try:
                start, end = float(fields[1]), float(fields[2])
            except ValueError:
                raise DataDirError(f"{where}: start/end are not numbers: '{v}'") from None
            if rec not in wav.lines:
                raise DataDirError(f"{where}: recording '{rec}' is not in wav.scp")
            if start < 0:
                raise DataDirError(f"{where}: negative start time {fields[1]}")
            if start >= end:
                raise DataDirError(f"{where}: start {fields[1]} is not before end {fields[2]}")
        for name, kind in kinds.items():
            if kind == "rec" and name != "wav.scp":
                _same_keys(wav, tables[name], "recording")

    for name, convert in (("utt2num_samples", int), ("utt2dur", float), ("reco2dur", float)):
        if name in tables:
            _check_numbers(tables[name], convert)

    # spk2utt must say exactly what utt2spk says.
    expected: dict[str, list[str]] = {}
    for u in sorted(utt2spk.values):
        expected.setdefault(utt2spk.values[u], []).append(u)
    if "spk2utt" in tables:
        s2u = tables["spk2utt"]
        for spk, v in s2u.values.items():
            where = f"{s2u.path}:{s2u.lines[spk]}: speaker '{spk}'"
            if spk not in expected:
                raise DataDirError(f"{where} has no utterances in utt2spk")
            got = v.split()
            if (got if check_sorted else sorted(got)) != expected[spk]:
                diff = set(got) ^ set(expected[spk])
                if not diff:
                    raise DataDirError(f"{where}: utterances are not sorted or repeated")
                u = min(diff)
                side = "lists" if u in got else "lacks"
                raise DataDirError(f"{where} {side} utterance '{u}', unlike utt2spk")
        for spk, us in expected.items():
            if spk not in s2u.values:
                raise DataDirError(f"{utt2spk.path}:{utt2spk.lines[us[0]]}: speaker '{spk}' "
                                   f"is missing from spk2utt")
    for name, kind in kinds.items():
        if kind == "spk":
            t = tables[name]
            extra = t.lines.keys() - expected.keys()
            if extra:
                k = min(extra)
                raise DataDirError(f"{t.path}:{t.lines[k]}: speaker '{k}' is not in utt2spk")
            missing = expected.keys() - t.lines.keys()
            if missing:
                k = min(missing)
                raise DataDirError(f"{t.path}: speaker '{k}' (utt2spk line "
                                   f"{utt2spk.lines[expected[k][0]]}) is missing")

    warnings = 0
    bad = [u for u, s in utt2spk.values.items() if not u.startswith(s)]
    if bad:
        warnings += 1
        u = bad[0]
        log.warning("%s:%d: utterance '%s' does not start with its speaker id '%s' "
                    "(%d of %d utterances); ESPnet expects speaker-prefixed utterance ids",
                    utt2spk.path, utt2spk.lines[u], u, utt2spk.values[u], len(bad),
                    len(utt2spk.values))
    return {
        "utterances": len(utt2spk.values),
        "speakers": len(expected),
        "recordings": len(wav.values),
        "files": len(tables),
        "warnings": warnings,
    }


# --------------------------------------------------------------------------- fix


def fix_data_dir(path: str | os.PathLike) -> dict[str, int]:
    """Keep utterances present in every table, drop unused recordings/speakers, sort.

    Rewrites the dir in place (atomic per file; unchanged files are not touched)
    and returns how many lines were removed from each file.
    """
    path = Path(path)
    d = DataDir.load(path)
    utt2spk = d.utt["utt2spk"]
    keep = set(utt2spk)
    for t in d.utt.values():
        keep &= t.keys()
    keep = {u for u in keep if len(utt2spk[u].split()) == 1}
    if d.has_segments:
        keep = {u for u in keep if _segment_ok(d.utt["segments"][u])}
    # Recordings and speakers must be in every per-recording / per-speaker table.
    recs = set.intersection(*(set(t) for t in d.rec.values()))
    utt2rec = d.utt2rec()
    keep = {u for u in keep if utt2rec[u] in recs}
    for t in d.spk.values():
        keep = {u for u in keep if utt2spk[u] in t}

    fixed = d.subset(sorted(keep))
    removed: dict[str, int] = {}
    for group, new_group in ((d.utt, fixed.utt), (d.rec, fixed.rec), (d.spk, fixed.spk)):
        for name, t in group.items():
            removed[name] = len(t) - len(new_group[name])
    removed["spk2utt"] = len(set(utt2spk.values())) - len(set(fixed.utt["utt2spk"].values()))
    for name, n in removed.items():
        if n:
            log.warning("%s: removed %d line(s) not consistent with the other files",
                        path / name, n)
    if not keep:
        raise DataDirError(f"{path}: no utterance is consistent across all files; nothing "
                           f"written")
    fixed.write(path)
    log.info("%s: fixed: kept %d of %d utterances", path, len(keep), len(utt2spk))
    return removed


def _segment_ok(value: str) -> bool:
    fields = value.split()
    try:
        return len(fields) == 3 and 0 <= float(fields[1]) < float(fields[2])
    except ValueError:
        return False


# --------------------------------------------------------------------------- copy/subset


def copy_data_dir(src: str | os.PathLike, dst: str | os.PathLike, *, utt_prefix: str = "",
                  utt_suffix: str = "", spk_prefix: str = "", spk_suffix: str = "",
                  rec_prefix: str | None = None, rec_suffix: str | None = None) -> None:
    """Copy a data dir, renaming ids consistently in every file.

    Recording ids get the utterance prefix/suffix unless `rec_prefix`/`rec_suffix`
    say otherwise (without `segments` they ARE utterance ids, so they must).
    """
    src = Path(src)
    d = DataDir.load(src)
    d.check(src)
    rec_prefix = utt_prefix if rec_prefix is None else rec_prefix
    rec_suffix = utt_suffix if rec_suffix is None else rec_suffix
    if not d.has_segments and (rec_prefix, rec_suffix) != (utt_prefix, utt_suffix):
        raise DataDirError(f"{src}: no segments file, so recording ids are utterance ids; "
                           f"rec_prefix/rec_suffix must equal utt_prefix/utt_suffix")
    d.renamed(lambda u: f"{utt_prefix}{u}{utt_suffix}",
              lambda s: f"{spk_prefix}{s}{spk_suffix}",
              lambda r: f"{rec_prefix}{r}{rec_suffix}").write(dst)


def _read_id_list(ids: Iterable[str] | str | os.PathLike) -> list[str]:
    """An id list given directly, or as a file whose first field per line is the id."""
    if isinstance(ids, (str, os.PathLike)):
        try:
            return [key for _, key, _ in iter_table(ids)]
        except TableError as e:
            raise DataDirError(str(e)) from None
    return list(ids)


def subset_data_dir(src: str | os.PathLike, dst: str | os.PathLike, *,
                    utt_list: Iterable[str] | str | os.PathLike | None = None,
                    first: int | None = None, last: int | None = None,
                    spk_list: Iterable[str] | str | os.PathLike | None = None) -> int:
    """Write the selected utterances of `src` to `dst`; returns how many.

    Exactly one selector: `utt_list`/`spk_list` (ids, or a file of ids), or the
    `first`/`last` N utterances in sorted order.
    """
    selectors = {"utt_list": utt_list, "first": first, "last": last, "spk_list": spk_list}
    chosen = [name for name, value in selectors.items() if value is not None]
    if len(chosen) != 1:
        raise ValueError(f"subset_data_dir needs exactly one selector, got {chosen or 'none'}")
    src = Path(src)
    d = DataDir.load(src)
    d.check(src)
    utts = d.utts()
    if first is not None or last is not None:
        n = first if first is not None else last
        if not 0 < n <= len(utts):
            raise DataDirError(f"{src}: cannot take {n} utterances, it has {len(utts)}")
        keep = utts[:n] if first is not None else utts[-n:]
    else:
        wanted = set(_read_id_list(utt_list if utt_list is not None else spk_list))
        utt2spk = d.utt["utt2spk"]
        if utt_list is not None:
            keep = [u for u in utts if u in wanted]
            unknown = len(wanted - utt2spk.keys())
        else:
            keep = [u for u in utts if utt2spk[u] in wanted]
            unknown = len(wanted - set(utt2spk.values()))
        if unknown:
            log.warning("%s: %d of %d listed ids are not in the data dir", src, unknown,
                        len(wanted))
        if not keep:
            raise DataDirError(f"{src}: none of the listed ids is in the data dir")
    d.subset(keep).write(dst)
    return len(keep)


# --------------------------------------------------------------------------- split


def _chunk_bounds(weights: list[int], n: int) -> list[int]:
    """Cut points 0 = b0 < ... < bn = len(weights): n contiguous non-empty chunks
    whose weight sums are as equal as the cut positions allow."""
    cum = list(itertools.accumulate(weights, initial=0))  # cum[i] = sum(weights[:i])
    bounds = [0]
    for k in range(1, n):
        target = cum[-1] * k / n
        i = bisect.bisect_left(cum, target)
        if target - cum[i - 1] <= cum[i] - target:  # the cut just before is closer
            i -= 1
        i = min(max(i, bounds[-1] + 1), len(weights) - (n - k))
        bounds.append(i)
    bounds.append(len(weights))
    return bounds


def split_data_dir(src: str | os.PathLike, n: int, *, by: str = "utt") -> list[Path]:
    """Split into `src/split{n}{,spk,rec}/{1..n}`, contiguous chunks in sorted order.

    Chunks are balanced by number of utterances; by "spk"/"recording" every
    speaker/recording stays in one part.  An existing split newer than every
    source file is reused.
    """
    if by not in SPLIT_SUFFIX:
        raise ValueError(f"by must be one of {sorted(SPLIT_SUFFIX)}, got '{by}'")
    src = Path(src)
    split_dir = src / f"split{n}{SPLIT_SUFFIX[by]}"
    parts = [split_dir / str(i) for i in range(1, n + 1)]
    if n >= 1 and _split_is_fresh(src, split_dir, parts):
        return parts

    d = DataDir.load(src)
    d.check(src)
    utt2rec = d.utt2rec()
    utt2unit = {"utt": None, "spk": d.utt["utt2spk"], "recording": utt2rec}[by]
    groups: dict[str, list[str]] = {}
    for u in d.utts():
        groups.setdefault(u if utt2unit is None else utt2unit[u], []).append(u)
    units = sorted(groups)
    if not 1 <= n <= len(units):
        raise DataDirError(f"{src}: cannot split {len(units)} {by} unit(s) into {n} parts")
    bounds = _chunk_bounds([len(groups[x]) for x in units], n)

    if split_dir.exists():
        shutil.rmtree(split_dir)
    for part, lo, hi in zip(parts, bounds, bounds[1:]):
        d.subset((u for x in units[lo:hi] for u in groups[x]), utt2rec).write(part)
    (split_dir / _SPLIT_STAMP).touch()
    return parts


def _split_is_fresh(src: Path, split_dir: Path, parts: list[Path]) -> bool:
    try:
        stamp = (split_dir / _SPLIT_STAMP).stat().st_mtime_ns
    except FileNotFoundError:
        return False
    if not all((p / "utt2spk").is_file() for p in parts):
        return False
    sources = [p for p in src.iterdir() if p.is_file() and _kind(p.name)]
    return all(p.stat().st_mtime_ns < stamp for p in sources)


# --------------------------------------------------------------------------- combine


def _merge(tables: list[tuple[Path, dict[str, str]]], name: str) -> dict[str, str]:
    """Union of one table from several dirs; the same key must have the same value."""
    out: dict[str, str] = {}
    owner: dict[str, Path] = {}
    for src, t in tables:
        for k, v in t.items():
            if k in out and out[k] != v:
                raise DataDirError(f"{name}: '{k}' differs between {owner[k]} and {src}")
            out[k] = v
            owner.setdefault(k, src)
    return out


def _common_names(dirs: list[tuple[Path, DataDir]], group: str) -> list[str]:
    """Names present in every source; the others are dropped with a warning."""
    names = [set(getattr(d, group)) for _, d in dirs]
    common = set.intersection(*names)
    for name in sorted(set.union(*names) - common):
        lacking = [str(p) for p, d in dirs if name not in getattr(d, group)]
        log.warning("combine: dropping %s: missing from %s", name, ", ".join(lacking))
    return sorted(common)


def combine_data_dirs(dst: str | os.PathLike, srcs: Iterable[str | os.PathLike], *,
                      fs: int = 16000, skip_empty: bool = False) -> int:
    """Write the union of `srcs` to `dst`; returns the number of utterances.

    Duplicate utterance ids are an error.  If only some sources have `segments`,
    the others get identity segments (one segment per recording), which needs
    their durations from reco2dur or utt2num_samples (at `fs` Hz).
    `skip_empty` leaves out sources without utterances (a stage-3 job whose
    every segment was dropped) instead of refusing them; all empty is an error.
    """
    srcs = [Path(s) for s in srcs]
    if skip_empty:
        empty = [s for s in srcs
                 if (s / "utt2spk").is_file() and (s / "utt2spk").stat().st_size == 0]
        if empty and len(empty) == len(srcs):
            raise DataDirError(f"combine: every source is empty ({', '.join(map(str, srcs))})")
        for s in empty:
            log.warning("combine: %s has no utterances; left out", s)
        srcs = [s for s in srcs if s not in empty]
    dirs = [(s, DataDir.load(s)) for s in srcs]
    if not dirs:
        raise ValueError("combine_data_dirs needs at least one source")
    for p, d in dirs:
        d.check(p)
    owner: dict[str, Path] = {}
    for p, d in dirs:
        for u in d.utt["utt2spk"]:
            if u in owner:
                raise DataDirError(f"combine: utterance '{u}' is in both {owner[u]} and {p}")
            owner[u] = p

    if any(d.has_segments for _, d in dirs):
        for p, d in dirs:
            if not d.has_segments:
                _add_identity_segments(p, d, fs)

    out = DataDir()
    for group in ("utt", "rec", "spk"):
        for name in _common_names(dirs, group):
            getattr(out, group)[name] = _merge([(p, getattr(d, group)[name]) for p, d in dirs],
                                               name)
    for name in _common_names(dirs, "plain"):
        contents = {d.plain[name] for _, d in dirs}
        if len(contents) == 1:
            out.plain[name] = contents.pop()
        else:
            log.warning("combine: dropping %s: it differs between sources", name)
    out.write(dst)
    return len(owner)


def _add_identity_segments(path: Path, d: DataDir, fs: int) -> None:
    """Turn a dir without segments into one with a whole-recording segment each."""
    if "reco2dur" in d.rec:
        ends = d.rec["reco2dur"]
    elif "utt2num_samples" in d.utt:
        durs = _durations(lambda n: d.utt.get(n) if n == "utt2num_samples" else None, fs, path)
        ends = {u: _fmt_seconds(x) for u, x in durs.items()}
    else:
        raise DataDirError(f"{path}: has no segments while other sources do; identity "
                           f"segments need its reco2dur or utt2num_samples")
    d.utt["segments"] = {u: f"{u} 0 {ends[u]}" for u in d.utt["utt2spk"]}


# --------------------------------------------------------------------------- durations/filter


def _durations(get: Callable[[str], dict[str, str] | None], fs: int,
               where: Path) -> dict[str, float] | None:
    """Utterance durations from utt2num_samples, utt2dur, segments or (no segments) reco2dur."""
    if (t := get("utt2num_samples")) is not None:
        conv, name = (lambda v: int(v) / fs), "utt2num_samples"
    elif (t := get("utt2dur")) is not None:
        conv, name = float, "utt2dur"
    elif (t := get("segments")) is not None:
        def conv(v: str) -> float:
            _, start, end = v.split()
            return float(end) - float(start)
        name = "segments"
    elif (t := get("reco2dur")) is not None:
        conv, name = float, "reco2dur"
    else:
        return None
    out = {}
    for u, v in t.items():
        try:
            out[u] = conv(v)
        except ValueError:
            raise DataDirError(f"{where / name}: '{u}': bad value '{v}'") from None
    return out


def utt2dur(path: str | os.PathLike, *, fs: int = 16000) -> dict[str, float]:
    """Duration in seconds of every utterance of a data dir (no audio is read)."""
    path = Path(path)

    def get(name: str) -> dict[str, str] | None:
        if name == "reco2dur" and (path / "segments").is_file():
            return None  # keyed by recording, not utterance
        return _read(path / name) if (path / name).is_file() else None

    durs = _durations(get, fs, path)
    if durs is None:
        raise DataDirError(f"{path}: no utt2num_samples, utt2dur, segments or reco2dur "
                           f"to get durations from")
    return durs


def filter_data_dir(src: str | os.PathLike, dst: str | os.PathLike, *,
                    min_dur: float | None = None, max_dur: float | None = None,
                    nonempty_text_files: Iterable[str] = (), fs: int = 16000) -> dict[str, int]:
    """Drop utterances shorter than min_dur / longer than max_dur seconds, or with an
    empty value in any of `nonempty_text_files`; returns removed counts per reason."""
    src = Path(src)
    d = DataDir.load(src)
    d.check(src)
    nonempty = list(nonempty_text_files)
    for name in nonempty:
        if name not in d.utt:
            raise DataDirError(f"{src / name}: missing (named in nonempty_text_files)")
    durs: dict[str, float] = {}
    if min_dur is not None or max_dur is not None:
        found = _durations(lambda n: d.utt.get(n, d.rec.get(n)), fs, src)
        if found is None:
            raise DataDirError(f"{src}: no utt2num_samples, utt2dur, segments or reco2dur "
                               f"to filter by duration")
        durs = found

    removed: dict[str, int] = {}
    keep = []
    for u in d.utts():
        reason = None
        if min_dur is not None and durs[u] < min_dur:
            reason = f"shorter than {min_dur}s"
        elif max_dur is not None and durs[u] > max_dur:
            reason = f"longer than {max_dur}s"
        else:
            reason = next((f"empty {n}" for n in nonempty if not d.utt[n][u]), None)
        if reason is None:
            keep.append(u)
        else:
            removed[reason] = removed.get(reason, 0) + 1
    for reason, n in removed.items():
        log.info("%s: removed %d utterance(s): %s", src, n, reason)
    if not keep:
        raise DataDirError(f"{src}: every utterance was filtered out ({removed})")
    d.subset(keep).write(dst)
    log.info("%s -> %s: kept %d of %d utterances", src, dst, len(keep), len(d.utt["utt2spk"]))
    return removed
