"""A figure spec of three small fully synthetic cells, for tests of the figure runner's files."""

from __future__ import annotations

from pathlib import Path


def three_cell_figure(figure_id: str, *, seed: int, generations: int) -> str:
    """The TOML of a figure ``figure_id``: cells n = 4, 6, 8 (s = 20, support 8, S0 = 0.3,
    8 runs, 3 kept trajectories)."""
    cells = "\n".join(f'[[cells]]\nkey = "{key}"\nlabel = "n = {n}"\nspec = {{ n = {n} }}\n'
                      for key, n in (("a", 4), ("b", 6), ("c", 8)))
    return (f'id = "{figure_id}"\ntitle = "Three fully synthetic loops"\npaper = "none"\n'
            f'layout = "runs_grid"\nseed = {seed}\ntrajectories = 3\n\n[base]\nvocab = 20\n'
            f'support = 8\nS0 = 0.3\ngenerations = {generations}\nruns = 8\n\n{cells}')


def reference_figure(folder: Path, figure_id: str, *, seed: int, generations: int):
    """Write :func:`three_cell_figure` to ``folder``/<id>.toml and run it uninterrupted into
    ``folder``/reference: (the spec's path, the loaded figure, the run)."""
    from modelcollapse.experiments import load_figure, run_figure

    path = folder / f"{figure_id}.toml"
    path.write_text(three_cell_figure(figure_id, seed=seed, generations=generations))
    figure = load_figure(path)
    return path, figure, run_figure(figure, folder / "reference", progress=False)
