"""RowAdam against torch's Adam run on each row alone: the rows of a batch step as if each were
optimised by itself, the others stay put, and SparseAdam's saved state loads."""

from __future__ import annotations

import torch

from engine.category.row_adam import RowAdam


def _loss(table: torch.Tensor, rows: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    picked = torch.nn.functional.embedding(rows, table, sparse=True)
    return ((picked - target[rows]) ** 2 * (1 + picked.abs())).sum()


def test_each_row_steps_like_adam_on_that_row_alone():
    torch.manual_seed(0)
    start = torch.randn(6, 4, dtype=torch.float64)
    target = torch.randn(6, 4, dtype=torch.float64)
    table = torch.nn.Parameter(start.clone())
    opt = RowAdam([table], lr=0.05)
    alone = [torch.nn.Parameter(start[r].clone()) for r in range(6)]
    refs = [torch.optim.Adam([a], lr=0.05) for a in alone]
    gen = torch.Generator().manual_seed(1)
    for _ in range(40):
        # Rows 0-1 in most batches, the rest now and then: the counts differ per row.
        rows = torch.unique(
            torch.cat([torch.tensor([0, 1]), torch.randint(0, 6, (2,), generator=gen)])
        )
        before = table.detach().clone()
        opt.zero_grad()
        _loss(table, rows, target).backward()
        opt.step()
        for r in range(6):
            if r in rows.tolist():
                refs[r].zero_grad()
                a = alone[r]
                ((a - target[r]) ** 2 * (1 + a.abs())).sum().backward()
                refs[r].step()
            else:
                torch.testing.assert_close(table.detach()[r], before[r], rtol=0, atol=0)
    for r in range(6):
        torch.testing.assert_close(table.detach()[r], alone[r].detach(), rtol=1e-12, atol=1e-12)
    counts = opt.state[table]["row_steps"]
    assert counts[0] == 40 and counts.min() < 40


def test_dense_gradient_is_plain_adam():
    torch.manual_seed(2)
    a = torch.nn.Parameter(torch.randn(3, 2, dtype=torch.float64))
    b = torch.nn.Parameter(a.detach().clone())
    ours, ref = RowAdam([a], lr=0.1), torch.optim.Adam([b], lr=0.1)
    for _ in range(10):
        for p, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            (p**3).sum().backward()
            opt.step()
    torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-12, atol=1e-12)


def test_a_sparse_adam_state_loads_and_continues():
    table = torch.nn.Parameter(torch.ones(4, 3))
    old = torch.optim.SparseAdam([table], lr=0.01)
    target = torch.zeros(4, 3)
    for _ in range(3):
        old.zero_grad()
        _loss(table, torch.tensor([0, 2]), target).backward()
        old.step()
    saved = old.state_dict()
    ours = RowAdam([table], lr=0.01)
    ours.load_state_dict(saved)
    before = table.detach().clone()
    ours.zero_grad()
    _loss(table, torch.tensor([1]), target).backward()
    ours.step()
    assert torch.equal(ours.state[table]["row_steps"], torch.tensor([3.0, 4.0, 3.0, 3.0]))
    moved = (table.detach() - before).abs().sum(1)
    assert moved[1] > 0 and moved[0] == 0 and moved[2] == 0
