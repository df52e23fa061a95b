"""The recurrent cells of the NumPy reference, each written once: its recurrence over a
chunk and its BPTT, side by side (``design.md`` section 2b).

A cell runs one layer of the stack through the T steps of a chunk. The stack driver
(:mod:`charrnn.kernels.reference`) has already put the input side of every step into
``buf.a``, ``Wx·in_t + bx`` for all t at once (a column gather at layer 0, one GEMM above
it), and the start state into ``buf.h[0]`` (and ``buf.c[0]``); only the products with the
previous state are left, step by step. Backward, the driver has put into ``buf.dh`` the
gradient reaching each h_t from above (the output layer, or the next layer's input); the
cell runs back through time and returns the gradients of the input side, ``dAx``, and of
the recurrent side, ``dAh`` (the rows ``dWh``, and a GRU's ``dbh``, sum over), each
(T, B, G·H), for the driver's GEMMs over all T steps.

Row-major, B streams in the rows, H hidden units; gates in PyTorch's order. The comment
beside each line is the line of section 2b it computes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class LayerBuffers(NamedTuple):
    """One layer's part of the workspace, shaped for a (B, T) chunk (views)."""

    h: np.ndarray               # (T+1, B, H): h_0 .. h_T
    c: np.ndarray | None        # (T+1, B, H): the LSTM's c_0 .. c_T
    a: np.ndarray               # (T, B, G*H): the input side of each step, then what the
                                # cell keeps for BPTT (rnn: h[1:] itself)
    ah: np.ndarray | None       # (T, B, 3H): the GRU's h_{t-1} @ Wh.T + bh
    dh: np.ndarray              # (T, B, H): dh_t from above


class Cell:
    """What a cell does; :class:`RNN`, :class:`LSTM` and :class:`GRU` do it."""

    @staticmethod
    def forward(Wh: np.ndarray, bh: np.ndarray | None, buf: LayerBuffers) -> None:
        """The recurrence over the chunk.

        Parameters
        ----------
        Wh : ndarray, (G*H, H)          the recurrent weights
        bh : ndarray, (G*H,) or None    the GRU's hidden-side bias (None for the others)
        buf : LayerBuffers              on entry ``buf.a`` holds Wx·in_t + bx for every
                                        step and ``buf.h[0]`` (``buf.c[0]``) the start
                                        state; on return ``buf.h[1:]`` (``buf.c[1:]``)
                                        hold the states, ``buf.a`` (``buf.ah``) what BPTT
                                        reads
        """
        raise NotImplementedError

    @staticmethod
    def backward(Wh: np.ndarray, buf: LayerBuffers, dhnext: np.ndarray,
                 dcnext: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """BPTT through the chunk, after :meth:`forward` on the same buffers.

        Parameters
        ----------
        Wh : ndarray, (G*H, H)          the recurrent weights
        buf : LayerBuffers              ``buf.dh`` holds the gradient reaching each h_t
                                        from above (overwritten)
        dhnext, dcnext : ndarray, (B, H)   zeros (dcnext: the LSTM's; None otherwise)

        Returns
        -------
        (dAx, dAh) : ndarray, (T, B, G*H) each
            The gradients of the input side Wx·in_t + bx and of the recurrent side
            h_{t-1} @ Wh.T (+ bh), views into ``buf``; the same array but for the GRU.
        """
        raise NotImplementedError


def _sigmoid_(x):
    """x = 1 / (1 + exp(-x)) in place (exp(-x) may overflow to inf: the right 0)."""
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1
    np.reciprocal(x, out=x)


class RNN(Cell):
    """h_t = tanh(a_t),  a_t = Wx·in_t + h_{t-1} @ Wh.T + b  (design.md section 2).

    The pre-activation a_t is computed in h_t's own place: ``buf.a`` is ``buf.h[1:]``.
    """

    @staticmethod
    def forward(Wh: np.ndarray, bh: np.ndarray | None, buf: LayerBuffers) -> None:
        hs = buf.h                                              # (T+1, B, H)
        # at B = 1 a step is three small calls and their overhead is the cost: np.dot (not
        # matmul's ufunc dispatch), Wh.T made once, one view per step (by index: iterating
        # over hs costs more to start, which counts when sampling runs one step at a time)
        hprev, WhT = hs[0], Wh.T
        for t in range(1, hs.shape[0]):
            h = hs[t]                                           # (B, H): a_t, then h_t
            h += np.dot(hprev, WhT)                             # a_t = ... + h_{t-1} @ Wh.T
            np.tanh(h, out=h)                                   # h_t = tanh(a_t)
            hprev = h

    @staticmethod
    def backward(Wh: np.ndarray, buf: LayerBuffers, dhnext: np.ndarray,
                 dcnext: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        hs, dhs = buf.h, buf.dh                                 # (T+1, B, H), (T, B, H)
        dtanh = 1 - hs[1:] * hs[1:]                             # (T, B, H): 1 - h_t**2
        for t in reversed(range(dhs.shape[0])):
            da = dhs[t]                                         # (B, H)
            da += dhnext                                        # dh_t = dh from above + dhnext
            da *= dtanh[t]                                      # da_t = (1 - h_t**2) * dh_t
            if t > 0:
                # np.dot as in the forward pass, into a fresh (B, H) array: np.dot's out=
                # refuses an unaligned buffer (ws.dhnext only supplies the zeros)
                dhnext = np.dot(da, Wh)                         # dhnext = da_t @ Wh
        return dhs, dhs                                         # da is dAx and dAh


class LSTM(Cell):
    """a_t = Wx·in_t + h_{t-1} @ Wh.T + b                      (B, 4H)
    i, f, g, o = sig(a[:, :H]), sig(a[:, H:2H]), tanh(a[:, 2H:3H]), sig(a[:, 3H:])
    c_t = f*c_{t-1} + i*g        h_t = o*tanh(c_t)

    ``buf.a[t]`` keeps the gates i, f, g, o, then (BPTT) da_t.
    """

    @staticmethod
    def forward(Wh: np.ndarray, bh: np.ndarray | None, buf: LayerBuffers) -> None:
        hs, cs, A = buf.h, buf.c, buf.a                         # (T+1, B, H) x2, (T, B, 4H)
        H = hs.shape[2]
        WhT = Wh.T
        with np.errstate(over="ignore"):                        # (in the sigmoids)
            for t in range(A.shape[0]):
                a = A[t]                                        # (B, 4H): Wx·in_t + b
                a += np.dot(hs[t], WhT)                         # a_t = ... + h_{t-1} @ Wh.T
                i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
                _sigmoid_(a[:, :2 * H])                         # i, f = sig(a_i), sig(a_f)
                np.tanh(g, out=g)                               # g = tanh(a_g)
                _sigmoid_(o)                                    # o = sig(a_o)
                c = cs[t + 1]                                   # (B, H)
                np.multiply(f, cs[t], out=c)
                c += i * g                                      # c_t = f*c_{t-1} + i*g
                h = hs[t + 1]                                   # (B, H)
                np.tanh(c, out=h)
                h *= o                                          # h_t = o*tanh(c_t)

    @staticmethod
    def backward(Wh: np.ndarray, buf: LayerBuffers, dhnext: np.ndarray,
                 dcnext: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        hs, cs, A, dhs = buf.h, buf.c, buf.a, buf.dh
        H = hs.shape[2]
        for t in reversed(range(A.shape[0])):
            a = A[t]                                            # (B, 4H): the gates
            i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            dh = dhs[t]                                         # (B, H)
            dh += dhnext                                        # dh_t = dh from above + dhnext
            tc = np.tanh(cs[t + 1])                             # tanh(c_t)
            do = dh * tc                                        # h_t = o*tanh(c_t)
            dc = dh * o * (1 - tc * tc)
            dc += dcnext                                        # dc_t = ... + dcnext
            di, df, dg = dc * g, dc * cs[t], dc * i             # c_t = f*c_{t-1} + i*g
            dcnext = dc * f                                     # dc_{t-1} through f
            # through the non-linearities, into a: da_t (sig' = s(1-s), tanh' = 1 - g**2)
            np.multiply(di, i * (1 - i), out=i)
            np.multiply(df, f * (1 - f), out=f)
            np.multiply(dg, 1 - g * g, out=g)
            np.multiply(do, o * (1 - o), out=o)
            if t > 0:
                dhnext = np.dot(a, Wh)                          # dhnext = da_t @ Wh  (B, H)
        return A, A                                             # da is dAx and dAh


class GRU(Cell):
    """ax_t = Wx·in_t + bx          ah_t = h_{t-1} @ Wh.T + bh      (B, 3H) each
    r = sig(ax[:, :H] + ah[:, :H])      z = sig(ax[:, H:2H] + ah[:, H:2H])
    n = tanh(ax[:, 2H:] + r*ah[:, 2H:])  h_t = (1-z)*n + z*h_{t-1}

    ``buf.a[t]`` keeps r, z, n, then (BPTT) dax_t; ``buf.ah[t]`` keeps ah_t, then dah_t.
    """

    @staticmethod
    def forward(Wh: np.ndarray, bh: np.ndarray | None, buf: LayerBuffers) -> None:
        hs, A, AH = buf.h, buf.a, buf.ah                        # (T+1, B, H), (T, B, 3H) x2
        H = hs.shape[2]
        WhT = Wh.T
        with np.errstate(over="ignore"):                        # (in the sigmoids)
            for t in range(A.shape[0]):
                ax, ah = A[t], AH[t]                            # (B, 3H) each
                np.matmul(hs[t], WhT, out=ah)
                ah += bh                                        # ah_t = h_{t-1} @ Wh.T + bh
                rz = ax[:, :2 * H]
                rz += ah[:, :2 * H]
                _sigmoid_(rz)                                   # r, z = sig(ax + ah)
                r, z, n = ax[:, :H], ax[:, H:2 * H], ax[:, 2 * H:]
                n += r * ah[:, 2 * H:]
                np.tanh(n, out=n)                               # n = tanh(ax_n + r*ah_n)
                # h_t = (1-z)*n + z*h_{t-1}, as n + z*(h_{t-1} - n) (PyTorch's order)
                h = hs[t + 1]                                   # (B, H)
                np.subtract(hs[t], n, out=h)
                h *= z
                h += n

    @staticmethod
    def backward(Wh: np.ndarray, buf: LayerBuffers, dhnext: np.ndarray,
                 dcnext: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        hs, A, AH, dhs = buf.h, buf.a, buf.ah, buf.dh
        H = hs.shape[2]
        for t in reversed(range(A.shape[0])):
            ax, ah = A[t], AH[t]                                # r, z, n and ah_t
            r, z, n = ax[:, :H], ax[:, H:2 * H], ax[:, 2 * H:]
            dh = dhs[t]                                         # (B, H)
            dh += dhnext                                        # dh_t = dh from above + dhnext
            dhz = dh * z                                        # h_t = ... + z*h_{t-1}
            dz = dh * (hs[t] - n)                               # dh_t/dz = h_{t-1} - n
            dan = dh * (1 - z) * (1 - n * n)                    # through n = tanh(...)
            dr = dan * ah[:, 2 * H:]                            # ... + r*ah_n
            # into ah and ax: dah_t = [dar, daz, dan*r], dax_t = [dar, daz, dan]
            np.multiply(dan, r, out=ah[:, 2 * H:])
            np.multiply(dr, r * (1 - r), out=r)                 # r = sig(...): dar
            np.multiply(dz, z * (1 - z), out=z)                 # z = sig(...): daz
            n[...] = dan
            ah[:, :2 * H] = ax[:, :2 * H]
            if t > 0:
                dhnext = np.dot(ah, Wh)                         # dhnext = dah_t @ Wh
                dhnext += dhz                                   #        + dh_t * z
        return A, AH


CELLS: dict[str, type[Cell]] = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
