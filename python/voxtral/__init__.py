"""Voxtral Mini 4B Realtime (ASR) and Voxtral 4B TTS: one Python model, numpy and WebGPU backends.

The modules imported inside the browser (Pyodide) use only numpy and the standard library.
"""
__version__ = "0.1.0"
