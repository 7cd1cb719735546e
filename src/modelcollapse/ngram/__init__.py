"""n-gram language models of real text under recursive training (the paper's model, eq. 1–2,
with contexts = the k previous tokens and p(0) = a corpus's next-token frequencies).

* :func:`run` — one run: the fixed-contexts loop (every context resampled with its own
  S_j, exact per-context predictions beside it) or the generative loop (each model writes the
  next one's corpus), under any scenario of :mod:`modelcollapse.scenarios`.
* :func:`run_figure5` — ``reproduce fig5-ngram``: fully synthetic, 50 % and 20 % synthetic,
  orders 1–3, on tiny Shakespeare.
* :class:`NgramTable` (sparse counts), :func:`generate` (autoregressive writing),
  :func:`build_tokenizer` (char, word, BPE), :func:`fixed_contexts_prediction`.

Nothing here imports torch.
"""

from .figure import Figure5NgramResult, run_figure5
from .prediction import fixed_contexts_prediction
from .result import NgramResult, load_result
from .runner import run
from .sampler import generate
from .spec import NgramSpec
from .table import NgramTable
from .tokenize import build_tokenizer

__all__ = ["Figure5NgramResult", "NgramResult", "NgramSpec", "NgramTable", "build_tokenizer",
           "fixed_contexts_prediction", "generate", "load_result", "run", "run_figure5"]
