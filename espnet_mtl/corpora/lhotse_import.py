"""Stage-1 input from lhotse manifests: any corpus lhotse prepares becomes an ST recipe.

A split is either a RecordingSet + a SupervisionSet or a CutSet, as lhotse's
corpus recipes write them (`*.jsonl.gz`, read with `lhotse.load_manifest_lazy`).
Each supervision is one utterance: its `text` is the transcript and the
translation is the custom field named by `translation_field` (lhotse keeps extra
supervision fields in `custom`; e.g. `SupervisionSegment(..., custom={"translation":
...})`). The rows then go through the manifest reader's checks and kinds
(`espnet_mtl.corpora.manifest.RowCollector`): audio + both texts are ST rows,
no translation an ASR-only row; the recording id is lhotse's.

Audio must be a file source (`type: file`); a URL, command or in-memory source is
an error naming the recording (write the audio to files first, e.g. with
lhotse's `RecordingSet.save_audios`). A supervision on one channel of a
multi-channel recording is an error too (stage 3 reads the whole file).
`lhotse` is imported only here, when a recipe uses this input.
"""

from __future__ import annotations

import os
from pathlib import Path

from espnet_mtl.corpora.manifest import ManifestError, RowCollector, Rows
from espnet_mtl.corpora.writer import format_time


def _load(path: str | os.PathLike):
    from lhotse import load_manifest_lazy

    if not Path(path).is_file():
        raise ManifestError(f"lhotse manifest not found: {path}")
    try:
        return load_manifest_lazy(path)
    except (ValueError, KeyError, OSError) as e:
        raise ManifestError(f"{path}: not a lhotse manifest ({e})") from None


def _audio(recording, where: str) -> str:
    sources = recording.sources
    if len(sources) != 1 or sources[0].type != "file":
        kinds = ", ".join(s.type for s in sources)
        raise ManifestError(f"{where}: recording {recording.id} has audio source(s) of type "
                            f"{kinds}; only one file source is supported (save the audio to files "
                            f"first, e.g. RecordingSet.save_audios)")
    return str(sources[0].source)


def _row(sup, recording, start: float, translation_field: str, where: str) -> tuple[dict, str]:
    if recording.num_channels > 1 and sup.channel not in (None, list(range(recording.num_channels))):
        raise ManifestError(f"{where}: supervision {sup.id} is on channel {sup.channel} of the "
                            f"{recording.num_channels}-channel recording {recording.id}; stage 3 "
                            f"reads every channel (mixed down): split the channels into files")
    custom = sup.custom or {}
    translation = custom.get(translation_field)
    return {"id": sup.id, "audio": _audio(recording, where), "start": format_time(start),
            "end": format_time(start + sup.duration), "speaker": sup.speaker or "",
            "src_text": " ".join((sup.text or "").split()),
            "tgt_text": " ".join(str(translation or "").split())}, recording.id


def read_lhotse(*, recordings: str | os.PathLike | None = None,
                supervisions: str | os.PathLike | None = None,
                cuts: str | os.PathLike | None = None, translation_field: str = "translation",
                missing_audio: str = "error") -> Rows:
    """One split from lhotse manifests: (recordings + supervisions) or cuts."""
    if (cuts is None) == (recordings is None or supervisions is None):
        raise ManifestError("lhotse input: give either --lhotse_cuts, or --lhotse_recordings "
                            "and --lhotse_supervisions")
    named = Path(cuts if cuts is not None else supervisions)
    collector = RowCollector(named, missing_audio)
    if cuts is not None:
        for i, cut in enumerate(_load(cuts), 1):
            where = f"{cuts}: cut {i} ({cut.id})"
            if not hasattr(cut, "recording") or cut.recording is None:
                raise ManifestError(f"{where}: a cut without a recording (a MixedCut or "
                                    f"features-only cut); use cuts of recordings")
            for sup in cut.supervisions:
                # supervision times are relative to the cut
                fields, rec = _row(sup, cut.recording, cut.start + sup.start,
                                   translation_field, where)
                collector.add(where, fields, recording_id=rec)
        return collector.finish()
    recs = {r.id: r for r in _load(recordings)}
    for i, sup in enumerate(_load(supervisions), 1):
        where = f"{supervisions}: supervision {i} ({sup.id})"
        recording = recs.get(sup.recording_id)
        if recording is None:
            raise ManifestError(f"{where}: recording {sup.recording_id} is not in {recordings}")
        fields, rec = _row(sup, recording, sup.start, translation_field, where)
        collector.add(where, fields, recording_id=rec)
    return collector.finish()
