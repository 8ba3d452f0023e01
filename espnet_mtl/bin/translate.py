"""`python -m espnet_mtl.bin.translate --model DIR_OR_ZIP_OR_REPO file.wav [file.mp3 ...]`

Translate audio files with a trained model: an experiment dir, a packed zip
(stage 14), a packed folder or a Hub repository (`espnet_mtl.inference.pretrained`).
Any format the recipes read (wav, flac, mp3, ogg; m4a through ffmpeg), any sampling
rate (resampled to the model's) and channel count (mixed down). `--task asr` prints
transcripts (a multi-task model's ASR path). One line per file, `<file>\\t<text>`,
or JSON Lines with `--json`.
"""

import argparse
import contextlib
import json
import sys

import yaml


def _model_rate(config_file: str) -> int:
    with open(config_file, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    fs = (config.get("frontend_conf") or {}).get("fs", 16000)
    if isinstance(fs, str):  # "16k", read as ESPnet's frontends read it
        import humanfriendly

        fs = humanfriendly.parse_size(fs)
    return int(fs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="experiment dir, packed zip or folder, Hub id")
    p.add_argument("audio", nargs="+", help="audio files")
    p.add_argument("--task", choices=("st", "asr"), default="st")
    p.add_argument("--model_file", default=None, help="checkpoint in an experiment dir")
    p.add_argument("--beam_size", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    args = p.parse_args(argv)

    # stdout is the results only: what libraries print while loading goes to stderr
    with contextlib.redirect_stdout(sys.stderr):
        from espnet_mtl.inference.pretrained import PretrainedError, load_resolved, resolve
        from espnet_mtl.prep.audio_dump import AudioError, load_recording

        try:
            files = resolve(args.model, args.model_file)
            decoder = load_resolved(files, args.task, beam_size=args.beam_size,
                                    device=args.device)
        except (PretrainedError, OSError) as e:
            print(f"translate: error: {e}", file=sys.stderr)
            return 1
    fs = _model_rate(files["st_train_config"])
    status = 0
    for path in args.audio:
        try:
            speech = load_recording(path, fs, rec_id=path, kind="input")
        except AudioError as e:
            print(f"translate: error: {e}", file=sys.stderr)
            status = 1
            continue
        with contextlib.redirect_stdout(sys.stderr):
            text = decoder(speech)[0][0] or ""
        if args.json:
            print(json.dumps({"file": path, "task": args.task, "text": text}, ensure_ascii=False))
        else:
            print(f"{path}\t{text}")
    return status


if __name__ == "__main__":
    sys.exit(main())
