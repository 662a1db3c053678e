"""Renders a sine tone to a WAV file: the shape of an audio job, with the standard library."""

import math
import os
import struct
import sys
import wave
from pathlib import Path

freq = float(sys.argv[1]) if len(sys.argv) > 1 else 440.0
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
rate = 16000
out = Path(os.environ.get("WORK_DIR", "/work")) / "sine" / f"sine_{freq:g}hz.wav"
out.parent.mkdir(parents=True, exist_ok=True)
frames = b"".join(
    struct.pack("<h", int(12000 * math.sin(2 * math.pi * freq * i / rate)))
    for i in range(int(rate * seconds))
)
with wave.open(str(out), "wb") as wav:
    wav.setnchannels(1)
    wav.setsampwidth(2)
    wav.setframerate(rate)
    wav.writeframes(frames)
print(f"wrote {out} ({len(frames)} bytes, {freq:g} Hz, {seconds:g} s)")
