"""The "adding an optimizer" example of the ``descend.optim`` docstring, built exactly as written.

It must get validation, state_dict, the non-finite policy and the fast paths
for free, and equal a hand-written loop of the same formula.
"""

import re

import pytest
import torch

import descend.optim as O


def example():
    code = re.search(r"complete::\n\n(.*?)\n\nIt validates", O.__doc__, re.S).group(1)
    namespace: dict = {}
    exec(compile(re.sub(r"(?m)^    ", "", code), "descend.optim docstring", "exec"), namespace)
    return namespace["Lion"]


def test_the_example_is_about_fifteen_lines():
    code = re.search(r"complete::\n\n(.*?)\n\nIt validates", O.__doc__, re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 16


def hand_lion(p, grads, lr, b1, b2, wd):
    p, m = p.clone(), torch.zeros_like(p)
    for g in grads:
        c = b1 * m + (1 - b1) * g
        p = p - lr * (torch.sign(c) + wd * p)
        m = b2 * m + (1 - b2) * g
    return p


@pytest.mark.parametrize("impl", ["eager", "foreach", "fused"])
def test_example_equals_a_hand_written_loop_on_every_path(impl):
    Lion = example()
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    grads = [torch.randn(40, 3, generator=gen, dtype=torch.float64) for _ in range(30)]
    p = start.clone().requires_grad_()
    opt = Lion([p], lr=0.01, beta1=0.8, weight_decay=0.1, impl=impl)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    assert opt._plans[0].kind == impl
    ref = hand_lion(start, grads, 0.01, 0.8, 0.99, 0.1)
    assert (p.detach() - ref).abs().max().item() <= 1e-12


def test_example_gets_validation_state_dict_and_nonfinite_handling():
    Lion = example()
    x = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"beta1 must be in \[0, 1\), got 1.5"):
        Lion([x], beta1=1.5)
    with pytest.raises(ValueError, match="weight_decay must be"):
        Lion([x], weight_decay=-1.0)
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        Lion([x], nonfinite="sometimes")
    opt = Lion([x], lr=0.1)
    x.grad = torch.tensor([1.0, -2.0, 0.5])
    opt.step()
    sd = opt.state_dict()
    assert sd["descend"]["optimizer"] == "Lion" and set(sd["state"][0]) == {"step", "m"}
    y = x.detach().clone().requires_grad_()
    opt2 = Lion([y], lr=0.1)
    opt2.load_state_dict(sd)
    assert torch.equal(opt2.state[y]["m"], opt.state[x]["m"])
    x.grad = torch.tensor([float("nan"), 1.0, 1.0])
    before = x.detach().clone()
    with pytest.raises(O.NonFiniteGradientError, match="NaN gradient in parameter 0"):
        opt.step()
    assert torch.equal(x, before)
    opt.nonfinite = "skip"
    opt.step()
    assert torch.equal(x, before) and opt.state[x]["step"] == 1
