"""``modelcollapse theory``: the paper's formulas and the sharper predictions for one setting."""

from __future__ import annotations

import click
import numpy as np
import pydantic

from .._validation import check_float, check_int, validation_error_message
from ..engine.footprint import check_p0_fits
from ..spec import SimulationSpec
from ._common import echo_json, input_errors, spec_default


def p0_from_flags(where: str, **fields) -> np.ndarray:
    """p(0) exactly as ``simulate`` builds it from the same flags: a :class:`SimulationSpec`
    of the given p(0) fields (vocab, support, S0, family, p0, distribution_seed, seed; the
    others keep its defaults), then ``build_p0()``; so the verbs accept and refuse the same
    inputs, with the same messages. One distribution (vocab,)."""
    given = {k: v for k, v in fields.items() if v is not None}
    try:
        spec = SimulationSpec.model_validate(given, context={"where": where})
    except pydantic.ValidationError as exc:
        raise ValueError(validation_error_message(exc, where)) from None
    check_p0_fits(spec.contexts, spec.vocab, where=where)
    p = spec.build_p0(where)
    if p.ndim != 1:
        raise ValueError(f"The 'p0' parameter of {where} must hold one distribution (vocab,). "
                         f"Got shape {p.shape} instead.")
    return p


def p0_options(command):
    """The p(0) flags, shared by ``theory`` and ``budget`` and named as ``simulate`` names them."""
    for option in reversed((
        click.option("--vocab", type=int, help="Vocabulary size s." + spec_default("vocab")),
        click.option("--support", type=int, help="Support size of p(0)." + spec_default("support")),
        click.option("--S0", "S0", type=float,
                     help="Σ p_i² of p(0) (family target)." + spec_default("S0")),
        click.option("--family", type=click.Choice(["target", "zipf", "dirichlet", "uniform"]),
                     help="Family of p(0), as for simulate." + spec_default("family")),
        click.option("--p0", type=click.Path(dir_okay=False),
                     help="p(0) from .npy/.txt/.csv/.json (excludes the four above)."),
    )):
        command = option(command)
    return command


@click.command("theory")
@p0_options
@click.option("--p0-seed", "p0_seed", type=int,
              help="Seed of p(0) for the random families.  [default: 0]")
@click.option("--n", "n", type=int, required=True, help="Synthetic samples per generation.")
@click.option("--N", "N", type=int, help="Real corpus size (partially synthetic quantities).")
@click.option("--generations", "m", type=int,
              help="Generation m (default: the whole law of T; m → ∞ for partial).")
@click.option("--epsilon", type=float, help="ε for Lemma 1, Weissman, eq. 11.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def command(vocab, support, S0, family, p0, p0_seed, n, N, m, epsilon, fmt) -> None:
    """The paper's closed forms and bounds, the exact law of T and the predictions."""
    from ..theory import theory_report
    from ..theory.report import (
        check_exact_law_size,
        check_report_generations,
        format_theory_report,
    )

    where = "theory"
    with input_errors():
        p = p0_from_flags(where, vocab=vocab, support=support, S0=S0, family=family, p0=p0,
                          distribution_seed=p0_seed)
        n = check_exact_law_size(check_int(n, "n", low=1, where=where), where)
        if N is not None:
            N = check_int(N, "N", low=1, where=where)
        if m is not None:
            m = check_report_generations(
                check_int(m, "generations", low=1 if N is None else 2, where=where), where)
        if epsilon is not None:
            epsilon = check_float(epsilon, "epsilon", low=0.0, low_open=True, where=where)
    report = theory_report(p, n=n, N=N, m=m, epsilon=epsilon)
    if fmt == "json":
        echo_json(report)
    else:
        click.echo(format_theory_report(report))
