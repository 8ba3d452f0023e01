"""The 2-process gloo worker of test_modo's DDP test: a module of its own so that the
spawned processes import only torch and the strategy, not ESPnet."""

import datetime
import json
from pathlib import Path

import torch

from espnet_mtl.training.strategies import build_strategy
from espnet_mtl.training.strategies.modo import modo_lambda_step


def run(rank, world, init_file, result_file):
    """Rank `rank` of a 2-process gloo group: MoDo sees the averaged gradients on every rank
    (the same lambda and update everywhere); an objective missing on one rank does not
    hang the collective and is averaged over the ranks that have it."""
    # a collective that never completes fails after 2 minutes instead of gloo's 30
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}",
                                         rank=rank, world_size=world,
                                         timeout=datetime.timedelta(seconds=120))
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    ddp = torch.nn.parallel.DistributedDataParallel(net)
    data = [torch.randn(4, 3, generator=torch.Generator().manual_seed(10 + r)) for r in range(world)]

    def losses(module, x, drop_b=False):
        y = module(x)
        return {"a": y[:, 0].pow(2).sum(), "b": None if drop_b else (y[:, 1] - 1).pow(2).sum()}

    strategy = build_strategy("modo", {"gamma": 0.5}, {"a": 1.0, "b": 1.0})
    strategy.train()
    x = data[rank]
    loss = strategy.combine_two(losses(ddp, x[0::2]), lambda: losses(ddp, x[1::2]), net)
    loss.backward()
    mine = {"lambda": strategy.lambdas(), "grad": [p.grad.tolist() for p in net.parameters()]}
    # reference: one process, per-objective gradients averaged over the ranks' halves
    ref_net = torch.nn.Linear(3, 2)
    ref_net.load_state_dict(net.state_dict())
    params = list(ref_net.parameters())

    def averaged(rows):
        out = {}
        for name in ("a", "b"):
            per = [torch.autograd.grad(losses(ref_net, d[rows])[name], params) for d in data]
            out[name] = [sum(g[j] for g in per) / world for j in range(len(params))]
        return out

    g1, g2 = averaged(slice(0, None, 2)), averaged(slice(1, None, 2))
    lam = modo_lambda_step(torch.tensor([0.5, 0.5], dtype=torch.float64),
                           [g1["a"], g1["b"]], [g2["a"], g2["b"]], 0.5, 0.001)
    expect = [float(lam[0]) * ga + float(lam[1]) * gb for ga, gb in zip(g1["a"], g1["b"])]
    ok = (all(torch.allclose(p.grad, e, atol=1e-5) for p, e in zip(net.parameters(), expect))
          and abs(mine["lambda"]["a"] - float(lam[0])) < 1e-6)
    # objective b missing on rank 1's first half: no hang, b's G1 is rank 0's alone
    net.zero_grad()
    strategy2 = build_strategy("modo", {"gamma": 0.5}, {"a": 1.0, "b": 1.0})
    strategy2.train()
    strategy2.combine_two(losses(ddp, x[0::2], drop_b=rank == 1),
                          lambda: losses(ddp, x[1::2]), net).backward()
    same = [torch.zeros(1, dtype=torch.float64) + strategy2.lambdas()["a"]]
    torch.distributed.all_reduce(same[0])
    agree = abs(float(same[0]) / world - strategy2.lambdas()["a"]) < 1e-9
    if rank == 0:
        Path(result_file).write_text(json.dumps({"matches_reference": bool(ok),
                                                 "ranks_agree": bool(agree),
                                                 "lambda": mine["lambda"]}))
    torch.distributed.destroy_process_group()
