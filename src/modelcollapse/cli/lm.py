"""``modelcollapse lm``: recursive training of GPT-style models on real text (paper §4.1).

PyTorch is an optional extra, so this module imports ``modelcollapse.lm`` only when a
subcommand runs: the rest of the CLI works without it.
"""

from __future__ import annotations

import click

from ._common import echo_json, fail, input_errors


def _require_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        fail("modelcollapse lm needs PyTorch: pip install 'modelcollapse[lm]'.")


@click.group("lm")
def command() -> None:
    """Recursive training of GPT-style transformers on real text (paper §4.1, Fig. 5)."""


@command.command("run")
@click.option("--scenario", default="fully-synthetic", show_default=True,
              help="fully-synthetic, partially-synthetic, accumulate, most-recent, fresh-real.")
@click.option("--synthetic-fraction", type=float,
              help="Synthetic share n/(N+n) of the mixtures (Fig. 5: 0.5 and 0.2).")
@click.option("--K", "K", type=int, help="Window of most-recent.")
@click.option("--generations", type=int, default=10, show_default=True,
              help="Models trained after p(0).")
@click.option("--preset", default="auto", show_default=True,
              help="paper, cpu, tiny, or auto: paper on a CUDA device, cpu otherwise.")
@click.option("--device", default="auto", show_default=True,
              help="cpu, cuda, cuda:N, or auto (cuda when available).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Run directory: checkpoints per generation; rerun to resume.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--corpus", "corpus_path", type=click.Path(dir_okay=False),
              help="Text file (default: the cached tiny Shakespeare).")
@click.option("--download", is_flag=True, help="Fetch tiny Shakespeare into the cache if absent.")
@click.option("--real", default="p0", show_default=True,
              help="Generation-0 data: p0 (text sampled from p(0), as the paper) or text.")
@click.option("--corpus-tokens", type=int, help="Tokens per synthetic corpus (preset override).")
@click.option("--max-iters", type=int, help="Training iterations per model (preset override).")
@click.option("--stream-length", type=int,
              help="Tokens per generated stream (default block_size + 1: one window).")
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option("--top-k", type=int)
@click.option("--top-p", type=float)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a TTY).")
def run_command(scenario, synthetic_fraction, K, generations, preset, device, out, seed,
                corpus_path, download, real, corpus_tokens, max_iters, stream_length, temperature,
                top_k, top_p, progress) -> None:
    """Train p(0) on real text, then GENERATIONS models on earlier models' text.

    Every flag, the corpus, the output folder and the run's size (memory and disk) are
    checked before any work: what does not fit is refused in one line.
    """
    _require_torch()
    from .. import lm
    from ..lm.loop import RunDirectoryMismatch

    with input_errors():
        from ..lm.presets import preset_for_device

        resolved = lm.get_preset(preset_for_device(preset, device),
                                 corpus_tokens=corpus_tokens, max_iters=max_iters,
                                 stream_length=stream_length)
        sampling = lm.Sampling(temperature=temperature, top_k=top_k, top_p=top_p)
        request = lm.check_run(scenario, out=out, n_generations=generations, preset=resolved,
                               seed=seed, device=device, corpus=corpus_path, download=download,
                               real=real, synthetic_fraction=synthetic_fraction, K=K,
                               sampling=sampling, where="lm run",
                               names={"n_generations": "generations"})
    try:
        result = lm.run(request.scenario, out=request.out, n_generations=request.n_generations,
                        preset=request.preset, seed=request.entropy, device=request.device,
                        corpus=request.corpus, real=request.real, sampling=request.sampling,
                        progress=progress)
    except RunDirectoryMismatch as exc:
        fail(str(exc))
        return
    summary = result.summary()
    echo_json({
        "out": str(result.out),
        "figure": str(result.out / "run.png"),
        "samples": str(result.out / "samples.txt"),
        "scenario": summary["settings"]["scenario"],
        "preset": resolved.name,
        "device": summary["settings"]["device"],
        "seconds": summary["seconds"],
        "generations": [{"generation": g["generation"],
                         "final_val_loss": g["final_val_loss"],
                         "l1_to_first": g["l1_to_first"]["mean"],
                         "l1_to_first_se": g["l1_to_first"]["se"],
                         "l1_to_true": g["l1_to_true"]["mean"]}
                        for g in summary["generations"]],
    })
