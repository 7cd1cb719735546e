"""The statistical engine: one generation loop (``loop``) driven by a resolved ``plan``, a
``recorder`` of what a run keeps, and two backends that supply draws, histories and metric
kernels (``numpy``, ``torch``). Callers use :func:`modelcollapse.simulate`."""
