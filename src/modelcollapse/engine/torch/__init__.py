"""The torch backend of the statistical loop, on the CPU or a CUDA device: row streams
(``streams``), index draws, inverse CDF and binomial trees (``draws``), models as tokens or
counts (``history``), dense and sparse metric routes (``metrics``), the fused Triton spans
(``fused``), the recorder's device side (``recording``), and what the loop asks of a chunk
(``backend``). Importing it needs PyTorch."""
