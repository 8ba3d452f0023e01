"""Text-to-speech with the espeak-ng shared library shipped by `espeakng-loader`.

A thin ctypes wrapper: the library is initialised once per process in
synchronous mode (no audio device, no background thread), each call selects a
voice, sets rate and pitch, and collects the int16 samples that espeak-ng
hands to our synth callback. The result is resampled from espeak's native
rate (22050 Hz) to 16 kHz with a fixed windowed-sinc filter in numpy, so
synthesis does not need torch and the same (text, voice, rate, pitch) always
gives the same samples.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
from functools import lru_cache

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

# int callback(short *wav, int numsamples, espeak_EVENT *events)
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short),
                                   ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded, initialised or asked to speak."""


class _Engine:
    """The process-wide espeak-ng instance (the library keeps global state)."""

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
        self._lock = threading.Lock()

    def _on_audio(self, wav, numsamples, events):
        if numsamples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0  # 0 = continue synthesis

    def synth(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        lib = self.lib
        with self._lock:
            if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise EspeakError(f"espeak-ng has no voice {voice!r} (try en-us, en-gb, en-gb-scotland, "
                                  "en-gb-x-rp, en-029, optionally with a variant such as +m3 or +f2)")
            # Set every parameter on every call: nothing carries over from the last call.
            for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch),
                                 (_PARAM_VOLUME, 100), (_PARAM_RANGE, 50)):
                if lib.espeak_SetParameter(param, int(value), 0) != _EE_OK:
                    raise EspeakError(f"espeak_SetParameter({param}, {value}) failed")
            data = text.encode("utf-8") + b"\0"
            buf = ctypes.create_string_buffer(data, len(data))
            self._chunks = []
            # The voicing noise comes from espeak's own random generator:
            # reseed it so the output does not depend on earlier calls.
            lib.espeak_ng_SetRandSeed(1)
            err = lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if err != _EE_OK:
                raise EspeakError(f"espeak_Synth failed with error {err} for text {text!r}")
            lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


_engine: _Engine | None = None


def _get_engine() -> _Engine:
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def native_sample_rate() -> int:
    """espeak-ng's own output rate (22050 Hz for the bundled voices)."""
    return _get_engine().native_rate


@lru_cache(maxsize=None)
def _resample_filter(orig: int, new: int, zero_crossings: int = 8, rolloff: float = 0.95):
    """Polyphase windowed-sinc filter: (taps offsets, weights), one row per output phase."""
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
    """Band-limited resampling of a 1-D float signal from `orig` to `new` Hz.

    Only elementwise numpy operations in a fixed order, so the result is
    bit-identical from run to run.
    """
    if orig == new:
        return x.astype(np.float64)
    orig_r, new_r, half, offsets, weights = _resample_filter(orig, new)
    n_out = math.ceil(len(x) * new_r / orig_r)
    n_blocks = math.ceil(n_out / new_r)
    # Pad so that every tap of every block indexes inside the array.
    left = half
    need = n_blocks * orig_r + int(offsets.max()) + left + 1
    padded = np.zeros(max(need, len(x) + left), np.float64)
    padded[left:left + len(x)] = x
    starts = np.arange(n_blocks)[:, None] * orig_r + left  # (blocks, 1)
    out = np.zeros((n_blocks, new_r), np.float64)
    for k in range(offsets.shape[1]):  # accumulate tap by tap
        out += padded[starts + offsets[None, :, k]] * weights[None, :, k]
    return out.reshape(-1)[:n_out]


def synthesize(text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Speak `text`; return int16 samples at `sample_rate` Hz (mono).

    `voice` is an espeak-ng voice name, optionally with a variant (`en-gb+f2`);
    `rate` is in words per minute (80-450), `pitch` in 0-100.
    """
    engine = _get_engine()
    raw = engine.synth(text, voice, rate, pitch)
    y = resample(raw.astype(np.float64), engine.native_rate, sample_rate)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)
