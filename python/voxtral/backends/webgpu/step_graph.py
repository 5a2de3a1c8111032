"""A decode step recorded once and replayed: the GPU-resident decode loop.

Running the model code for every token costs hundreds of Python op calls per step, far more than
the GPU needs for the step itself. But a one-token decode step does the same work every time: only
the position, the token and the audio row change. So the step is recorded once through the normal
model code (`ASRDecoder.__call__` on `WebGPUOps`) with those three as fixed GPU buffers:

  x_audio [1, dim]  the step's audio embedding, copied from its row of the clip's embeddings
  tok     [1] u32   the previous token: read by the embedding gather at the start of the step and
                    overwritten by the argmax at its end (the token never visits the host)
  pos     [1] u32   the absolute position, read by RoPE, the KV-ring writes and attention

and every intermediate buffer of the recording is kept (so the pool never hands it to anyone
else). A step is then: write 4 bytes of position, one copy dispatch for the audio row, the
recorded dispatch list, one 4-byte copy of `tok` into a mappable buffer — a single submit.
"""
from __future__ import annotations

import numpy as np

from .ops import DeviceArray, WebGPUOps


class DecodeStepGraph:
    def __init__(self, ops: WebGPUOps, decoder, caches, scales):
        self.ops = ops
        dim = decoder.cfg.dim
        self.x_audio = ops._alloc((1, dim))
        self.tok = ops._alloc((1,), "u32")
        self.pos = ops._alloc((1,), "u32", for_upload=True)
        ops.flush()
        ops.begin_capture(self.pos)
        x = ops.add(self.x_audio, decoder.embed(ops, self.tok))  # [1, dim]
        h = decoder(ops, x, np.zeros(1, np.int64), caches, scales)  # positions come from `pos`
        logits = decoder.logits(ops, h)  # [1, vocab]
        ops.k.argmax(ops.seq, logits, self.tok)
        self.dispatches, self.keep = ops.end_capture()
        self.keep += [x, h, logits]

    def set_token(self, token_ref) -> None:
        """Seed `tok` with a token held on the device (the prefill's argmax) or on the host."""
        if isinstance(token_ref, DeviceArray):
            self.ops.k.copy(self.ops.seq, token_ref.view_elems(0, 1), self.tok)
        else:
            self.ops.flush()
            self.ops.k.write(self.tok, np.asarray(token_ref, np.uint32).reshape(1))

    def step(self, audio_rows, row: int, position: int):
        """Record step `position` with audio embedding `audio_rows[row]`, submit it, and return
        the readback handle of its token."""
        ops = self.ops
        ops.k.copy(ops.seq, audio_rows.view_rows(row, row + 1), self.x_audio)
        handle_src = self.tok
        # The position is written before this submit and after the previous one, so the previous
        # step (already submitted) still saw its own position.
        ops.k.write(self.pos, np.asarray([position], np.uint32))
        ops.seq.extend(self.dispatches)
        handle = ops.read_later(handle_src)
        ops.flush()
        return handle
