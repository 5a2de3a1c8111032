"""Steps recorded once and replayed: the GPU-resident decode loop and streaming encoder.

Running the model code for every token costs hundreds of Python op calls per step, far more than
the GPU needs for the step itself. But a one-token decode step does the same work every time: only
the position, the token and the audio row change. So the step is recorded once through the normal
model code (`ASRDecoder.__call__` on `WebGPUOps`) with those three as fixed GPU buffers:

  x_audio [1, dim]  the step's audio embedding, copied from its row of the clip's embeddings
  tok     [1] u32   the previous token: read by the embedding gather at the start of the step and
                    overwritten by the argmax at its end (the token never visits the host)
  pos     [1] u32   the absolute position, read by RoPE, the KV-ring writes and attention

and every intermediate buffer of the recording is kept (so the pool never hands it to anyone
else). A step is then: write 4 bytes of position and 4 of audio row index, one gather dispatch for
the audio row, the recorded dispatch list, one 4-byte copy of `tok` into a mappable buffer — a
single submit, with no new GPU object per step.

The streaming encoder step (8 mel frames of an 80 ms piece -> 4 encoder frames) is the same kind of
work: `EncoderStepGraph` records it with the mel rows, the 4 positions and the two conv states as
fixed buffers (the states are rewritten in place by the step itself), so a live piece costs two
small writes and one replay instead of ~350 op calls from Python.
"""
from __future__ import annotations

import numpy as np

from .kernels import GPUTensor
from .ops import DeviceArray, WebGPUOps


class DecodeStepGraph:
    def __init__(self, ops: WebGPUOps, decoder, caches, scales):
        self.ops = ops
        dim = decoder.cfg.dim
        self.x_audio = ops._alloc((1, dim))
        self.tok = ops._alloc((1,), "u32")
        self.pos = ops._alloc((1,), "u32", for_upload=True)
        self.row = ops._alloc((1,), "u32", for_upload=True)  # the audio row the next step reads
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
        stride = audio_rows.row_stride
        first, col = divmod(audio_rows.offset, stride)
        if col % 4 == 0 and stride % 4 == 0:
            # The row index goes through a buffer, counted from the buffer's first row: the same
            # uniform and bind group every step, whichever view of the buffer the rows come in (a
            # view of row `row` would be a new uniform and bind group per token, ~0.3 ms natively).
            whole = GPUTensor(audio_rows.buffer, (first + audio_rows.rows, audio_rows.cols), "f32", col, stride)
            ops.k.write(self.row, np.asarray([first + row], np.uint32))
            ops.k.gather_rows(ops.seq, whole, self.row, self.x_audio)
        else:
            ops.k.copy(ops.seq, audio_rows.view_rows(row, row + 1), self.x_audio)
        handle_src = self.tok
        # The position is written before this submit and after the previous one, so the previous
        # step (already submitted) still saw its own position.
        ops.k.write(self.pos, np.asarray([position], np.uint32))
        ops.seq.extend(self.dispatches)
        handle = ops.read_later(handle_src)
        ops.flush()
        return handle


class EncoderStepGraph:
    """One streaming encoder step of a fixed number of mel frames, recorded once."""

    def __init__(self, ops: WebGPUOps, encoder, conv_states, caches, n_mel_frames: int):
        self.ops = ops
        self.n_mel_frames = n_mel_frames
        n_out = n_mel_frames // encoder.time_reduction
        self.mel = ops._alloc((n_mel_frames, encoder.convs[0][0].shape[1]))  # [t, n_mels] time-major
        self.pos = ops._alloc((n_out,), "u32", for_upload=True)
        self.states = [ops._alloc(s.shape) for s in conv_states]  # [K - stride, C_in] each
        ops.flush()
        ops.begin_capture(self.pos)
        x = self.mel
        for (w, b, stride), state in zip(encoder.convs, self.states):
            x = ops.concat_rows([state, x])
            pad = state.shape[0]
            ops.k.copy(ops.seq, x.view_rows(x.shape[0] - pad, x.shape[0]), state)  # the next step's state
            x = ops.gelu(ops.conv1d(x, w, b, stride, 0))
        self.out = encoder.transformer(ops, x, np.zeros(n_out, np.int64), caches)  # [n_out, dim]
        self.dispatches, self.keep = ops.end_capture()
        self.keep += [x, self.out]

    def step(self, mel_chunk, first_position: int, conv_states: list) -> DeviceArray:
        """Run the step on mel_chunk [n_mels, n_mel_frames] at encoder positions first_position + i.
        conv_states: the stream's current states (copied in when they are not this graph's own).
        Returns the output rows, valid until the next step's dispatches run."""
        ops = self.ops
        ops.flush()  # whatever still reads the previous step's inputs goes first
        for mine, cur in zip(self.states, conv_states):
            if cur is not mine:
                ops.k.copy(ops.seq, cur, mine)
        ops.k.write(self.mel, np.ascontiguousarray(np.asarray(mel_chunk).T, dtype=np.float32))
        n = self.pos.size
        ops.k.write(self.pos, np.arange(first_position, first_position + n, dtype=np.uint32))
        ops.seq.extend(self.dispatches)
        return self.out


class FlowMatchingGraph:
    """The TTS flow-matching head's whole Euler solve for one frame (all steps, CFG batched),
    recorded once per (steps, alpha) and replayed per frame: h and the noise go into fixed
    buffers, the time table is computed before the recording, and the velocity network's group
    positions are the recording's fixed positions."""

    def __init__(self, ops: WebGPUOps, head, steps: int, alpha: float):
        self.ops = ops
        self.h = ops._alloc((1, int(head.w_llm.shape[1])))             # [1, backbone dim]
        self.noise = ops._alloc((1, int(head.w_in.shape[1])), for_upload=True)  # [1, 36]
        groups = head.solve_positions().astype(np.uint32)             # [6]: cond, uncond x 3 tokens
        pos = ops._alloc((groups.size,), "u32", for_upload=True)
        head.time_table(ops, steps)  # computed now, not recorded
        ops.flush()
        ops.k.write(pos, groups)
        ops.begin_capture(pos)
        self.out = head.acoustic_values(ops, self.h, self.noise, steps, alpha)  # [1, 36]
        self.dispatches, self.keep = ops.end_capture()
        self.keep += [self.out, pos]

    def run(self, h, noise):
        """Record the solve for backbone hidden h [1, dim] (device) and noise [36] (host) and
        return its output x [1, 36], valid until the next run."""
        ops = self.ops
        ops.flush()  # whatever still reads the previous noise goes first
        ops.k.write(self.noise, np.asarray(noise, dtype=np.float32).reshape(1, -1))
        ops.k.copy(ops.seq, ops.asarray(h), self.h)
        ops.seq.extend(self.dispatches)
        return self.out
