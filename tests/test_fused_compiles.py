"""The span kernel compiles to GPU machine code, checked on any machine.

Triton's interpreter (how tests/test_fused_step.py runs the kernel without a GPU) executes the
kernel's Python with numpy and accepts code that the compiler rejects. Here Triton compiles
it, through its own PTX assembler, for NVIDIA Ampere (sm_80) and Hopper (sm_90), with every
metric and with one, at the smallest and the largest block. The compiler must see the kernel
as a compiled function, so it runs in a fresh interpreter without ``TRITON_INTERPRET``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")
triton = pytest.importorskip("triton")

#: Exit status of the script below when this Triton's ahead-of-time compile API (not part of
#: what the loop uses: it compiles on first launch) differs from the one written against.
_OTHER_API = 3
_COMPILE = r"""
import json, sys
import triton
from modelcollapse.engine.torch import fused
other_api = int(sys.argv[2])
try:
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
except ImportError:
    sys.exit(other_api)

kernel = fused._span_kernel
pointers = {"pair_ptr": "*i32", "row_id_ptr": "*i64", "seeds_ptr": "*i64",
            "corpus_ptr": "*i64", "first_ptr": "*fp64", "truth_ptr": "*fp64",
            "values_ptr": "*fp64", "collapsed_ptr": "*u8", "dirac_ptr": "*i64",
            "onset_ptr": "*i32"}
flags = ("SIGMA", "SUP", "L1_FIRST", "L1_TRUE", "ENTROPY", "SUPPORT")
built = []
for arch, block, wanted in json.loads(sys.argv[1]):
    constants = {flag: flag in wanted for flag in flags}
    constants.update(ROW_STRIDE=fused.ROW_STRIDE, BLOCK=block, CHUNK=min(block, fused._CHUNK))
    signature = {name: pointers.get(name, "constexpr" if name in constants else "i32")
                 for name in kernel.arg_names}
    try:
        source = ASTSource(kernel, signature, constexprs={
            (kernel.arg_names.index(name),): value for name, value in constants.items()})
        target = GPUTarget("cuda", arch, 32)
    except TypeError:
        sys.exit(other_api)
    compiled = triton.compile(source, target=target, options={"num_warps": fused.NUM_WARPS})
    built.append([arch, block, len(compiled.asm["cubin"])])
print(json.dumps(built))
"""

CASES = [(arch, block, wanted) for arch in (80, 90) for block in (16, 256)
         for wanted in (["SIGMA", "SUP", "L1_FIRST", "L1_TRUE", "ENTROPY", "SUPPORT"],
                        ["L1_TRUE"])]


def test_span_kernel_compiles_for_ampere_and_hopper(tmp_path):
    try:
        from triton.backends.nvidia import compiler  # noqa: F401
    except ImportError:
        pytest.skip("this Triton has no NVIDIA backend")
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)  # compile, do not reuse a cached binary
    done = subprocess.run([sys.executable, "-c", _COMPILE, json.dumps(CASES), str(_OTHER_API)],
                          env=env, capture_output=True, text=True, timeout=300)
    if done.returncode == _OTHER_API:
        pytest.skip(f"Triton {triton.__version__} has another ahead-of-time compile API")
    assert done.returncode == 0, done.stderr[-4000:]
    built = json.loads(done.stdout.strip().splitlines()[-1])
    assert [case[:2] for case in built] == [list(case[:2]) for case in CASES]
    assert all(size > 0 for *_, size in built)
