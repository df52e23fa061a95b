"""The processes a run trains on: this one alone, or the K ranks of an MPI job.

Synchronous data parallelism. A run started by ``mpiexec -n K`` trains one model on K
processes through ``mpi4py``:

- rank r walks streams ``r*B .. r*B + B - 1`` of the ``K*B`` streams that one process
  with batch size ``K*B`` would cut (:class:`~charrnn.data.batches.Batches`);
- after forward and BPTT, one in-place ``Allreduce`` sums the flat gradients; the mean
  over the K*B streams is that sum over K, folded into the update's scale, so every rank
  applies the same update and the parameters stay identical;
- rank 0 alone evaluates, prints and writes files; what decides the run's course (the
  validation loss, the time budget, Ctrl-C) goes to every rank, so all stop at one step.

Without a launcher in the environment, or with a world of one process, nothing here
talks to MPI and a run is exactly a single-process run. :func:`world` finds out which.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import numpy as np

from ..errors import CharRNNError

# what the common launchers put in every rank's environment: Open MPI, MPICH's Hydra
# (and Intel MPI, srun --mpi=pmi2), MVAPICH
LAUNCHER_SIZE = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
MPI_EXTRA = 'pip install "charrnn-blas[mpi]"'


class MPIError(CharRNNError, RuntimeError):
    """MPI was asked for and cannot be used, or another rank failed."""


def launched_size(environ=os.environ) -> int:
    """The world size a launcher announced in the environment (1 when none did)."""
    for name in LAUNCHER_SIZE:
        value = environ.get(name)
        if value is not None:
            try:
                return max(int(value), 1)
            except ValueError:
                raise MPIError(f"{name}={value!r} in the environment is not a process "
                               f"count") from None
    return 1


class World:
    """The ranks of a run and the few collectives training needs.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm or None
        None for a single process.

    Attributes
    ----------
    rank, size : int
    """

    def __init__(self, comm=None) -> None:
        self.comm = comm
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()
        self._flags = np.zeros(2, np.int64)
        self._MPI = None
        if comm is not None:
            from mpi4py import MPI             # (imported already: comm is its object)
            self._MPI = MPI

    @property
    def parallel(self) -> bool:
        """True for more than one process."""
        return self.size > 1

    @property
    def root(self) -> bool:
        """True on the rank that evaluates, prints and writes (rank 0)."""
        return self.rank == 0

    def streams(self, batch_size: int) -> slice:
        """This rank's rows of the ``size * batch_size`` streams."""
        return slice(self.rank * batch_size, (self.rank + 1) * batch_size)

    def sum_(self, a: np.ndarray) -> None:
        """Sum ``a`` over the ranks, in place (every rank gets the sum)."""
        if self.parallel:
            MPI = self._MPI
            self.comm.Allreduce(MPI.IN_PLACE, a, op=MPI.SUM)

    def gather_rows_(self, a: np.ndarray) -> None:
        """Fill every rank's copy of ``a`` (``size * n`` rows) with each rank's own
        ``n`` rows (:meth:`streams`), in place."""
        if self.parallel:
            self.comm.Allgather(self._MPI.IN_PLACE, a)

    def decide(self, stop: bool, interrupted: bool) -> tuple[bool, bool]:
        """Rank 0's ``stop`` (its clock) and any rank's ``interrupted`` (Ctrl-C), on
        every rank."""
        if not self.parallel:
            return stop, interrupted
        MPI, f = self._MPI, self._flags
        f[0] = stop and self.root
        f[1] = interrupted
        self.comm.Allreduce(MPI.IN_PLACE, f, op=MPI.MAX)
        return bool(f[0]), bool(f[1])

    def share(self, value):
        """Rank 0's ``value`` (any picklable object), on every rank."""
        return self.comm.bcast(value, root=0) if self.parallel else value

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """Fail on every rank if the block fails on any, instead of leaving the others
        waiting in a collective: the failing rank raises its own error, the others an
        :class:`MPIError`. Every rank must enter the block."""
        if not self.parallel:
            yield
            return
        try:
            yield
        except BaseException:
            self._failed(1)
            raise
        if self._failed(0):
            raise MPIError("another rank failed while setting up the run (its error is "
                           "above)")

    def _failed(self, mine: int) -> bool:
        return bool(self.comm.allreduce(mine, op=self._MPI.MAX))

    def abort(self, error: BaseException, code: int = 1) -> None:
        """End the whole job after an error on this rank alone, which would leave the
        other ranks waiting: say so on stderr and abort every rank."""
        print(f"charrnn: rank {self.rank} of {self.size}: {type(error).__name__}: "
              f"{error}; ending every rank", file=sys.stderr, flush=True)
        self.comm.Abort(code)

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size})"


SINGLE = World()
_world: World | None = None


def world() -> World:
    """The world of this process: the MPI job it was launched in, or :data:`SINGLE`.

    Under a launcher of more than one process this imports ``mpi4py`` (which starts
    MPI). A script that imported ``mpi4py.MPI`` itself runs in its ``COMM_WORLD``.

    Raises
    ------
    MPIError
        A launcher started several processes and ``mpi4py`` is not installed.
    """
    global _world
    if _world is None:
        if launched_size() > 1 or "mpi4py.MPI" in sys.modules:
            try:
                from mpi4py import MPI
            except ImportError as e:
                raise MPIError(f"this process is one of {launched_size()} started by an "
                               f"MPI launcher, and training on several processes needs "
                               f"mpi4py ({e}): {MPI_EXTRA}") from None
            comm = MPI.COMM_WORLD
            _world = World(comm) if comm.Get_size() > 1 else SINGLE
        else:
            _world = SINGLE
    return _world


def follower() -> bool:
    """True in a rank other than 0 of a run's world (once :func:`world` has found it):
    a process that leaves the run's messages to rank 0."""
    return _world is not None and not _world.root
