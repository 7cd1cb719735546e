"""``modelcollapse ngram``: n-gram language models of real text under recursive training."""

from __future__ import annotations

import click

from ._common import echo_json, input_errors


@click.group("ngram")
def command() -> None:
    """n-gram models of real text: the paper's model with contexts = the k previous tokens."""


@command.command("run")
@click.option("--corpus", type=click.Path(dir_okay=False),
              help="Text file (default: the cached tiny Shakespeare).")
@click.option("--download", is_flag=True, help="Fetch tiny Shakespeare into the cache if absent.")
@click.option("--tokenizer", default="char", show_default=True, help="char, word or bpe.")
@click.option("--vocab-size", type=int, help="BPE vocabulary  [default: 2000]")
@click.option("--order", type=int, default=2, show_default=True, help="k: tokens of context.")
@click.option("--loop", default="fixed", show_default=True,
              help="fixed (every context resampled with S_j = ratio·|C_j|) or generative "
                   "(each model writes the next one's corpus).")
@click.option("--scenario", default="fully-synthetic", show_default=True,
              help="Any scenario of simulate: fully-synthetic, partially-synthetic, "
                   "accumulate, most-recent, random-pool, accumulate-subsample, fresh-real.")
@click.option("--synthetic-fraction", type=float, help="Synthetic share n/(N+n) of the mixtures.")
@click.option("--K", "K", type=int, help="Window of most-recent.")
@click.option("--generations", type=int, default=10, show_default=True)
@click.option("--runs", type=int, help="Independent runs  [default: 100 fixed, 1 generative]")
@click.option("--ratio", type=float, help="Fixed loop: S_j = max(1, round(ratio·|C_j|))  "
                                          "[default: 0.01]")
@click.option("--min-count", type=int, help="Fixed loop: leave out contexts seen fewer times  "
                                            "[default: 1]")
@click.option("--tokens", type=int, help="Generative loop: tokens each model writes  "
                                         "[default: 1000000]")
@click.option("--streams", type=int, help="Generative loop: parallel streams  [default: 1000]")
@click.option("--contexts", type=int, default=300, show_default=True,
              help="Contexts sampled from p(0) for the L1 metrics.")
@click.option("--samples", type=int, default=3, show_default=True,
              help="Decoded text streams kept per generation.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False),
              help="Folder: checkpoints every generation (rerun to resume), result.nc, "
                   "run.png, samples.txt, summary.json.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a TTY).")
def run_command(out, fmt, progress, **fields) -> None:
    """Count p(0) from a corpus, then run GENERATIONS models recursively trained on samples."""
    from .. import ngram
    from ..corpus import load_text

    given = {k: v for k, v in fields.items() if v is not None and v is not False}
    with input_errors():
        spec = ngram.NgramSpec(**given)
        text = load_text(spec.corpus, download=spec.download)
    result = ngram.run(spec, out=out, text=text, progress=progress)
    summary = result.summary()
    if out is not None:
        summary["out"] = str(out)
    if fmt == "json":
        echo_json(summary)
        return
    click.echo(_text(result))


#: Columns of the text summary: metric, header, format.
_COLUMNS = (("l1_to_first", "L1 to p(1)", "{:.3f}"), ("cross_entropy", "val CE", "{:.3f}"),
            ("unseen_context", "unseen", "{:.3%}"), ("collapsed_share", "collapsed", "{:.3f}"),
            ("support_mean", "succ/ctx", "{:.2f}"), ("types", "types", "{:,.0f}"),
            ("entropy_rate", "H rate", "{:.3f}"), ("distinct_3", "distinct-3", "{:.3f}"))


def _text(result) -> str:
    data = result.data
    corpus = result.summary()["corpus"]
    lines = [f"{data.attrs['scenario']}: {result.spec['tokenizer']} tokens "
             f"(V = {corpus['vocab_size']:,}), order {result.spec['order']}, "
             f"{result.spec['loop']} loop; p(0): {corpus['contexts']:,} contexts, "
             f"{corpus['types']:,} n-gram types  ({float(data.attrs['seconds']):.1f} s)",
             "  m  " + "  ".join(f"{h:>11}" for _, h, _ in _COLUMNS)]
    for m in range(data.sizes["generation"]):
        cells = []
        for name, _, fmt in _COLUMNS:
            cell = fmt.format(float(data[f"{name}_mean"][m]))
            if f"{name}_predicted" in data:
                cell += f" ({float(data[f'{name}_predicted'][m]):.3f})"
            cells.append(f"{cell:>11}")
        lines.append(f"{m:3d}  " + "  ".join(cells))
    if any(k.endswith("_predicted") for k in data.data_vars):
        lines.append("(in brackets: the exact per-context prediction)")
    return "\n".join(lines)
