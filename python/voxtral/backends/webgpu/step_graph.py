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
else). A submit is then up to STEPS_PER_SUBMIT steps: write the first position and audio row index,
and per step one gather dispatch for the audio row, the recorded dispatch list and decode_advance
(the token kept in a small history, position and row moved on by the GPU); then one copy of the
history into a mappable buffer — no new GPU object per step, one host wait per submit.

The streaming encoder step (8 mel frames of an 80 ms piece -> 4 encoder frames) is the same kind of
work: `EncoderStepGraph` records it with the mel rows, the 4 positions and the two conv states as
fixed buffers (the states are rewritten in place by the step itself), so a live piece costs two
small writes and one replay instead of ~350 op calls from Python.
"""
from __future__ import annotations

import numpy as np

from .kernels import GPUTensor
from .ops import DeviceArray, WebGPUOps

# Decode steps per submit for a file (DecodeStepGraph.steps): enough to hide the per-submit cost
# and the readback's round trip (one per submit), few enough that an EOS wastes little.
STEPS_PER_SUBMIT = 8


class DecodeStepGraph:
    def __init__(self, ops: WebGPUOps, decoder, caches, scales):
        self.ops = ops
        dim = decoder.cfg.dim
        self.x_audio = ops._alloc((1, dim))
        self.tok = ops._alloc((1,), "u32")
        self.pos = ops._alloc((1,), "u32", for_upload=True)
        self.row = ops._alloc((1,), "u32", for_upload=True)  # the audio row the next step reads
        self.hist = ops._alloc((STEPS_PER_SUBMIT,), "u32")  # the tokens of one submit's steps
        self.ctr = ops._alloc((1,), "u32", for_upload=True)  # steps done in this submit
        ops.flush()
        ops.begin_capture(self.pos)
        x = ops.add(self.x_audio, decoder.embed(ops, self.tok))  # [1, dim]
        h = decoder(ops, x, np.zeros(1, np.int64), caches, scales)  # positions come from `pos`
        logits = decoder.logits(ops, h)  # [1, vocab]
        ops.k.argmax(ops.seq, logits, self.tok)
        self.dispatches, self.keep = ops.end_capture()
        self.keep += [x, h, logits]
        self._advance: list = []  # decode_advance, the end of each step (its buffers are fixed)
        ops.k.decode_advance(self._advance, self.pos, self.row, self.tok, self.hist, self.ctr)

    steps_per_submit = STEPS_PER_SUBMIT

    def set_token(self, token_ref) -> None:
        """Seed `tok` with a token held on the device (the prefill's argmax) or on the host."""
        if isinstance(token_ref, DeviceArray):
            self.ops.k.copy(self.ops.seq, token_ref.view_elems(0, 1), self.tok)
        else:
            self.ops.flush()
            self.ops.k.write(self.tok, np.asarray(token_ref, np.uint32).reshape(1))

    def steps(self, audio_rows, row: int, position: int, n: int = 1):
        """Record n <= STEPS_PER_SUBMIT steps, positions position + i with audio embeddings
        audio_rows[row + i], in ONE submit, and return the readback handle of their n tokens.
        Each step ends with decode_advance (its token kept, position and row moved on by the GPU),
        so the host writes the first position and row only and waits once per n steps: files
        decode with the GPU never idle between steps, whatever the host's per-submit cost."""
        _check(1 <= n <= STEPS_PER_SUBMIT, f"1..{STEPS_PER_SUBMIT} steps per submit, not {n}")
        ops = self.ops
        stride = audio_rows.row_stride
        first, col = divmod(audio_rows.offset, stride)
        _check(col % 4 == 0 and stride % 4 == 0, "audio rows must be 4-aligned views")
        # The row index goes through a buffer, counted from the buffer's first row: the same
        # uniform and bind group every step, whichever view of the buffer the rows come in (a view
        # of row `row` would be a new uniform and bind group per token, ~0.3 ms natively).
        whole = GPUTensor(audio_rows.buffer, (first + audio_rows.rows, audio_rows.cols), "f32", col, stride)
        # Written before this submit and after the previous one (which read its own values).
        ops.k.write(self.row, np.asarray([first + row], np.uint32))
        ops.k.write(self.pos, np.asarray([position], np.uint32))
        ops.k.write(self.ctr, np.zeros(1, np.uint32))
        step: list = []  # the same dispatches for each of the n steps: built once
        ops.k.gather_rows(step, whole, self.row, self.x_audio)
        step += self.dispatches
        step += self._advance
        ops.seq.extend(step * n)
        handle = ops.read_later(self.hist.view_elems(0, n))
        ops.flush()
        return handle


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


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
