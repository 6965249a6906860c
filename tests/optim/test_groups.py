"""decay_groups against the param groups nanoGPT, minGPT and HF Transformers build by hand."""

import pytest
import torch
from torch import nn

import descend.optim as O


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.Linear(d, 3 * d)
        self.LayerNorm = nn.LayerNorm(d)  # BERT's spelling, which HF's classic no_decay list names
        self.mlp = nn.Linear(d, d, bias=False)
        self.rmsnorm_gain = nn.Parameter(torch.ones(d))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))[..., : x.shape[-1]]
        return self.LayerNorm(x + self.mlp(x)) * self.rmsnorm_gain


class TinyGPT(nn.Module):
    def __init__(self, vocab=11, d=6):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList([Block(d), Block(d)])
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)
        self.frozen = nn.Parameter(torch.zeros(d, d), requires_grad=False)

    def forward(self, idx):
        x = self.wte(idx)
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln_f(x))


def ids(group):
    return [id(p[1] if isinstance(p, tuple) else p) for p in group["params"]]


def test_ndim_rule_is_nanogpts():
    model = TinyGPT()
    # nanoGPT's configure_optimizers, verbatim in spirit
    param_dict = {pn: p for pn, p in model.named_parameters() if p.requires_grad}
    decay = [p for n, p in param_dict.items() if p.dim() >= 2]
    nodecay = [p for n, p in param_dict.items() if p.dim() < 2]
    groups = O.decay_groups(model, weight_decay=0.1, named=False)
    assert [ids(g) for g in groups] == [[id(p) for p in decay], [id(p) for p in nodecay]]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]


def test_hf_rule_is_the_trainers():
    model = TinyGPT()

    def get_parameter_names(m, forbidden_types, forbidden_names):  # transformers.trainer_pt_utils
        result = []
        for name, child in m.named_children():
            result += [
                f"{name}.{n}" for n in get_parameter_names(child, forbidden_types, forbidden_names)
                if not isinstance(child, tuple(forbidden_types))
                and not any(f in f"{name}.{n}".lower() for f in forbidden_names)
            ]
        result += [k for k in m._parameters if not any(f in k.lower() for f in forbidden_names)]
        return result

    decay_names = get_parameter_names(model, [nn.LayerNorm], ["bias", "layernorm", "rmsnorm"])
    hand = [
        {"params": [p for n, p in model.named_parameters() if n in decay_names and p.requires_grad],
         "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if n not in decay_names and p.requires_grad],
         "weight_decay": 0.0},
    ]
    groups = O.decay_groups(model, 0.01, rule="hf", named=False)
    assert [ids(g) for g in groups] == [ids(g) for g in hand]
    assert any(p is model.wte.weight for p in groups[0]["params"])  # HF decays embeddings
    assert any(p is model.blocks[0].rmsnorm_gain for p in groups[1]["params"])


def test_classic_no_decay_list_and_mingpt_exclusions():
    model = TinyGPT()
    no_decay = ["bias", "LayerNorm.weight"]
    hand = [
        [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay) and p.requires_grad],
        [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay) and p.requires_grad],
    ]
    groups = O.decay_groups(model, 0.01, rule="all", exclude_names=no_decay, named=False)
    assert [ids(g) for g in groups] == [[id(p) for p in h] for h in hand]
    # minGPT: Linear weights decay; biases, LayerNorm and Embedding weights do not
    decay = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    groups = O.decay_groups(model, 0.1, rule="all", exclude_types=(nn.LayerNorm, nn.Embedding),
                            exclude_names=("bias", "rmsnorm"))
    assert set(ids(groups[0])) == decay
    names = [n for n, _ in groups[1]["params"]]
    assert "wte.weight" in names and "blocks.0.ln_1.weight" in names and "head.bias" in names


def test_callable_rule_named_pairs_and_options():
    model = TinyGPT()
    groups = O.decay_groups(model, 0.1, rule=lambda name, p: name.startswith("head"), lr=0.5)
    assert [n for n, _ in groups[0]["params"]] == ["head.weight", "head.bias"]
    assert all(g["lr"] == 0.5 for g in groups)
    assert "frozen" not in [n for g in groups for n, _ in g["params"]]
    everything = O.decay_groups(model, 0.1, trainable_only=False)
    assert "frozen" in [n for n, _ in everything[0]["params"]]
    assert O.decay_mask(model)["blocks.1.attn.bias"] is False
    only = O.decay_groups(nn.Linear(3, 3, bias=False), 0.1)
    assert len(only) == 1 and only[0]["weight_decay"] == 0.1  # no empty group


def test_groups_train_like_hand_built_groups():
    def train(groups_of):
        torch.manual_seed(0)
        model = TinyGPT().double()
        opt = O.AdamW(groups_of(model), lr=0.05)
        idx = torch.randint(0, 11, (4, 5), generator=torch.Generator().manual_seed(1))
        for _ in range(5):
            opt.zero_grad()
            nn.functional.cross_entropy(model(idx).flatten(0, 1), idx.flatten()).backward()
            opt.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    def by_hand(model):
        ps = [p for p in model.parameters() if p.requires_grad]
        return [{"params": [p for p in ps if p.dim() >= 2], "weight_decay": 0.5},
                {"params": [p for p in ps if p.dim() < 2], "weight_decay": 0.0}]

    ours = train(lambda m: O.decay_groups(m, 0.5))
    assert torch.equal(ours, train(by_hand))
    everything = train(lambda m: [{"params": [p for p in m.parameters() if p.requires_grad],
                                   "weight_decay": 0.5}])
    assert (ours - everything).abs().max() > 1e-3
    torch_opt = torch.optim.AdamW(O.decay_groups(TinyGPT(), 0.5), lr=0.05)  # torch takes them too
    assert [g["weight_decay"] for g in torch_opt.param_groups] == [0.5, 0.0]


@pytest.mark.parametrize("kwargs,match", [
    ({"rule": "dim>=2"}, r"rule must be one of ndim>=2.*got 'dim>=2'"),
    ({"rule": 3}, "rule must be one of"),
    ({"weight_decay": -0.1}, r"weight_decay must be in \[0, inf\), got -0.1"),
    ({"exclude_types": (int,)}, "exclude_types must hold torch.nn.Module subclasses"),
])
def test_bad_arguments_fail_clearly(kwargs, match):
    kwargs = {"weight_decay": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        O.decay_groups(TinyGPT(), **kwargs)


def test_model_must_be_a_module():
    with pytest.raises(ValueError, match="model must be a torch.nn.Module, got list"):
        O.decay_groups([torch.zeros(2)], 0.1)
