"""Chapter 5's exercise 1 checker: the pair correlations per factor, split by the shared factor."""

from dataclasses import replace

import torch

from esser_lab.iin import FactorTransformer, IINConfig
from esser_lab.iin.exercises import check_pair_correlations, pair_correlations


def the_solution(fa, fb, shared):  # the chapter's solution cell
    correlations = []
    for s in range(int(shared.max()) + 1):
        row = []
        for k in range(len(fa)):
            a, b = fa[k][shared == s], fb[k][shared == s]
            a, b = (a - a.mean(0)) / a.std(0), (b - b.mean(0)) / b.std(0)
            row.append((a * b).mean().item())
        correlations.append(row)
    return correlations


def test_a_known_correlation_is_found():
    g = torch.Generator().manual_seed(0)
    n, rho = 20_000, 0.975
    fa = [torch.randn(n, 2, generator=g), torch.randn(n, 3, generator=g)]
    fb = [rho * fa[0] + (1 - rho**2) ** 0.5 * torch.randn(n, 2, generator=g),
          torch.randn(n, 3, generator=g)]  # fmt: skip
    shared = torch.zeros(n, dtype=torch.long)
    (r_shared, r_other), = pair_correlations(fa, fb, shared)  # fmt: skip
    assert abs(r_shared - rho) < 0.005 and abs(r_other) < 0.02


def test_the_solution_on_a_tiny_factor_transformer_is_accepted_and_an_unsplit_table_refused():
    torch.manual_seed(0)
    config = replace(IINConfig.tiny(), factor_sizes=(3, 3, 10))
    model = FactorTransformer(config)
    g = torch.Generator().manual_seed(1)
    shared = torch.randint(2, (600,), generator=g)
    za = torch.randn(600, config.z_dim, generator=g)
    zb = torch.randn(600, config.z_dim, generator=g)
    zb[shared == 0] = 0.9 * za[shared == 0] + 0.4 * zb[shared == 0]  # only pairs of group 0 agree
    model(za)  # the first pass initialises ActNorm
    model.eval()
    with torch.no_grad():
        (fa, _), (fb, _) = model(za), model(zb)
    assert check_pair_correlations(fa, fb, shared, the_solution(fa, fb, shared))
    unsplit = the_solution(fa, fb, torch.zeros_like(shared)) * 2  # all pairs in both rows
    wrong = check_pair_correlations(fa, fb, shared, unsplit)
    exact = pair_correlations(fa, fb, shared)
    assert not wrong and f"{exact[0][0]:.2f}" not in str(wrong)
    assert not check_pair_correlations(fa, fb, shared, exact[:1])
    assert "no answer yet" in str(check_pair_correlations(fa, fb, shared, None))
