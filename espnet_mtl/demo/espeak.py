"""Text-to-speech with the espeak-ng shared library shipped by `espeakng-loader`.

A thin ctypes wrapper: the library is initialised once per process in
synchronous mode (no audio device, no background thread); we select a voice,
set rate and pitch, and collect the int16 samples that espeak-ng hands to our
synth callback. The result is resampled from espeak's native rate (22050 Hz)
to 16 kHz with a fixed windowed-sinc filter in numpy (no torch needed in the
worker processes).

Determinism: espeak-ng keeps synthesis state in C statics that no API call
resets (pitch-flutter phase, harmonic double buffer, AGC, echo buffer...), so
a second call in the same process can give slightly different samples. We
therefore never synthesise in the caller's process: every batch of texts runs
in a fresh forked worker process that initialises espeak-ng, speaks the batch
in order and exits. The samples then depend only on the batch (texts, voice,
rate, pitch), whichever worker runs it and whatever ran before.
"""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Iterator, Sequence

import numpy as np

SAMPLE_RATE = 16000

# Constants from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4

# Common names that are not espeak-ng voice file names.
_VOICE_ALIASES = {"en-gb": "en", "en-uk": "en"}

# int callback(short *wav, int numsamples, espeak_EVENT *events)
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short),
                                   ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded, initialised or asked to speak."""


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an espeak-ng voice (optionally `+variant`), rate, pitch."""

    name: str = "en-us"
    rate: int = 175   # words per minute (80-450)
    pitch: int = 50   # 0-100


class _Engine:
    """espeak-ng in this process (the library has global state: one per process)."""

    def __init__(self):
        try:
            import espeakng_loader
            lib_path = espeakng_loader.get_library_path()
            data_path = espeakng_loader.get_data_path()
        except Exception as e:  # ImportError, or a broken wheel
            raise EspeakError(
                f"cannot locate espeak-ng via espeakng-loader ({e}); "
                "install it with `pip install espeakng-loader`") from e
        if not os.path.isdir(data_path):
            raise EspeakError(f"espeak-ng voice data not found: expected a directory at {data_path}")
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError as e:
            raise EspeakError(f"cannot load the espeak-ng library {lib_path}: {e}") from e

        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]

        # espeak_Initialize accepts the espeak-ng-data directory itself as the path.
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (returned {rate}) with data path {data_path}")
        self.lib = lib
        self.native_rate = rate
        self._chunks: list[np.ndarray] = []
        # Keep a reference: ctypes would free the trampoline while C still uses it.
        self._callback = _SYNTH_CALLBACK(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, numsamples, events):
        if numsamples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0  # 0 = continue synthesis

    def set_voice(self, voice: Voice) -> None:
        base, plus, variant = voice.name.partition("+")
        name = _VOICE_ALIASES.get(base.lower(), base) + plus + variant
        if self.lib.espeak_SetVoiceByName(name.encode()) != _EE_OK:
            raise EspeakError(f"espeak-ng has no voice {voice.name!r} (try en-us, en-gb, en-gb-scotland, "
                              "en-gb-x-rp, en-029, optionally with a variant such as +m3 or +f2)")
        # Volume 85 leaves headroom: some variants reach full scale at 100.
        for param, value in ((_PARAM_RATE, voice.rate), (_PARAM_PITCH, voice.pitch),
                             (_PARAM_VOLUME, 85), (_PARAM_RANGE, 50)):
            if self.lib.espeak_SetParameter(param, int(value), 0) != _EE_OK:
                raise EspeakError(f"espeak_SetParameter({param}, {value}) failed for voice {voice}")

    def speak(self, text: str) -> np.ndarray:
        """int16 samples at the native rate for `text` in the current voice."""
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data, len(data))
        self._chunks = []
        self.lib.espeak_ng_SetRandSeed(1)  # voicing noise: same seed for every text
        err = self.lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != _EE_OK:
            raise EspeakError(f"espeak_Synth failed with error {err} for text {text!r}")
        self.lib.espeak_Synchronize()
        chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


@lru_cache(maxsize=None)
def _resample_filter(orig: int, new: int, zero_crossings: int = 8, rolloff: float = 0.95):
    """Polyphase windowed-sinc filter: reduced rates, half-width, tap offsets, weights."""
    g = math.gcd(orig, new)
    orig, new = orig // g, new // g
    cutoff = rolloff * min(1.0, new / orig)  # low-pass cutoff relative to the input Nyquist
    half = math.ceil(zero_crossings / cutoff)  # filter half-width in input samples
    phase_time = np.arange(new) * orig / new  # exact input position of each output phase
    base = np.floor(phase_time).astype(np.int64)
    offsets = base[:, None] + np.arange(-half + 1, half + 1)[None, :]
    dist = phase_time[:, None] - offsets
    window = np.cos(np.pi * dist / (2 * half)) ** 2  # Hann window over [-half, half]
    weights = cutoff * np.sinc(cutoff * dist) * window
    return orig, new, half, offsets, weights


def resample(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Band-limited resampling of a 1-D signal from `orig` to `new` Hz (float64 out).

    Only elementwise numpy operations in a fixed order, so the result is
    bit-identical from run to run.
    """
    x = np.asarray(x, np.float64)
    if orig == new:
        return x.copy()
    orig_r, new_r, half, offsets, weights = _resample_filter(orig, new)
    n_out = math.ceil(len(x) * new_r / orig_r)
    n_blocks = math.ceil(n_out / new_r)
    # Pad so that every tap of every block indexes inside the array.
    padded = np.zeros(n_blocks * orig_r + int(offsets.max()) + 2 * half + len(x), np.float64)
    padded[half:half + len(x)] = x
    starts = np.arange(n_blocks)[:, None] * orig_r + half  # (blocks, 1)
    out = np.zeros((n_blocks, new_r), np.float64)
    for k in range(offsets.shape[1]):  # accumulate tap by tap
        out += padded[starts + offsets[None, :, k]] * weights[None, :, k]
    return out.reshape(-1)[:n_out]


def _to_int16(y: np.ndarray) -> np.ndarray:
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def _speak_batch(job: tuple[Voice, tuple[str, ...], int]) -> list[np.ndarray]:
    """Worker-process body: speak the texts in order with one voice."""
    voice, texts, sample_rate = job
    engine = _Engine()
    engine.set_voice(voice)
    return [_to_int16(resample(engine.speak(t), engine.native_rate, sample_rate)) for t in texts]


def synthesize_batches(jobs: Iterable[tuple[Voice, Sequence[str]]], workers: int = 2,
                       sample_rate: int = SAMPLE_RATE) -> Iterator[list[np.ndarray]]:
    """Speak each (voice, texts) job; yield one list of int16 arrays per job, in order.

    Every job runs in its own fresh process (see the module docstring), at
    most `workers` at a time, so the output depends only on the job.
    """
    # fork: cheap, and it never re-imports the caller's __main__. The caller
    # never loads espeak-ng itself, so every child starts from a clean library.
    ctx = multiprocessing.get_context("fork")
    payload = ((voice, tuple(texts), sample_rate) for voice, texts in jobs)
    with ctx.Pool(max(1, workers), maxtasksperchild=1) as pool:
        yield from pool.imap(_speak_batch, payload)


def synthesize(text: str, voice: str | Voice = "en-us", rate: int | None = None,
               pitch: int | None = None, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Speak one text; return mono int16 samples at `sample_rate` Hz.

    `voice` is an espeak-ng voice name, optionally with a variant (`en-gb+f2`),
    or a `Voice`; `rate` (words per minute) and `pitch` (0-100) override it.
    Runs in a fresh process, so the same arguments give the same samples.
    """
    if not isinstance(voice, Voice):
        voice = Voice(voice)
    voice = Voice(voice.name, voice.rate if rate is None else rate,
                  voice.pitch if pitch is None else pitch)
    [[samples]] = synthesize_batches([(voice, [text])], workers=1, sample_rate=sample_rate)
    return samples
