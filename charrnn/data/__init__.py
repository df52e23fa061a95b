"""The data layer: from a text to the id chunks a training step reads.

=================  ==========================================================
``vocab``          the vocabulary: sorted code points, id <-> character
``text``           reading text files: UTF-8 or latin-1, BOM, newlines, chunks
``encode``         code points to ids: the vocabulary scan, the encoding pass
``cache``          the id cache: large texts encoded once, memory-mapped
``stdlib``         the built-in corpus: the standard library's source
``corpus``         :class:`Corpus` (a text as ids, the validation split), :func:`load`
``batches``        :class:`Batches`: B contiguous streams, T ids at a time
=================  ==========================================================

It depends on nothing of charrnn but the defaults (:mod:`charrnn.config`), the errors
and :mod:`charrnn.atomic`; the names below are its public face.
"""

from .batches import Batches
from .cache import default_cache_dir
from .corpus import Corpus, load
from .stdlib import stdlib_files, stdlib_text
from .text import iter_codepoints, read_text
from .vocab import Vocab, id_dtype

__all__ = ["Batches", "Corpus", "Vocab", "default_cache_dir", "id_dtype", "iter_codepoints",
           "load", "read_text", "stdlib_files", "stdlib_text"]
