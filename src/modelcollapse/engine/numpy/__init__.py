"""The numpy backend of the statistical loop: row streams and draws (``sampling``), models as
training tokens (``history``) or counts (``counts``), metric routes (``meter``, ``kernels``),
the compiled fixed-corpus route (``fixed_corpus``), and what the loop asks of a chunk
(``backend``)."""
