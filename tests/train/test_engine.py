import math

import pytest
import torch

from wpnas.errors import TrainingError
from wpnas.train.engine import Engine, EngineConfig, Trainer, evaluate, train_epochs
from wpnas.train.optim import OptimConfig, build_optimizer, build_scheduler


def test_cosine_schedule_ends_at_lr_min():
    p = torch.nn.Parameter(torch.zeros(1))
    cfg = OptimConfig(lr=0.1, lr_min=0.01)
    opt = build_optimizer([p], cfg)
    sched = build_scheduler(opt, cfg, total_steps=10)
    lrs = []
    for _ in range(10):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[-1] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert lrs[4] == pytest.approx(0.01 + 0.5 * 0.09 * (1 + math.cos(math.pi * 0.5)))


def test_trainer_learns_a_linear_problem():
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Linear(4, 2)
    engine = Engine("cpu")
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    trainer = Trainer(model.parameters(), OptimConfig(lr=0.5, lr_min=0.05, weight_decay=0.0), 80, engine)
    history = train_epochs(trainer, batches, 10, lambda: model, "test", modules=[model])
    assert len(history) == 10 and history[-1]["epoch"] == 10
    assert evaluate(model, batches, engine)["acc"] > 95.0


def test_nan_loss_is_a_clear_error():
    model = torch.nn.Linear(2, 2)
    engine = Engine("cpu", EngineConfig(nan_check_every=1))
    trainer = Trainer(model.parameters(), OptimConfig(lr=0.1, lr_min=0.0), 10, engine)
    x = torch.randn(4, 2)
    with pytest.raises(TrainingError, match="nan"):
        trainer.step(lambda inp: model(inp) * float("nan"), x, torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("bad", [dict(lr=0.0), dict(lr=0.1, lr_min=0.2), dict(momentum=1.0), dict(grad_clip=0.0)])
def test_bad_optim_settings(bad):
    from wpnas.errors import ConfigError

    with pytest.raises(ConfigError):
        OptimConfig(**bad)


def test_an_auxiliary_head_adds_its_weighted_loss():
    """A forward returning (logits, auxiliary logits) trains the auxiliary head with its weight; the
    returned loss stays the main head's cross-entropy."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    body, main, aux = torch.nn.Linear(4, 6), torch.nn.Linear(6, 3), torch.nn.Linear(6, 3)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))

    def forward(inputs):
        h = body(inputs)
        return main(h), aux(h)

    params = [*body.parameters(), *main.parameters(), *aux.parameters()]
    for weight in (0.0, 0.4):
        trainer = Trainer(params, OptimConfig(lr=1e-12, lr_min=0.0, grad_clip=None), 1, Engine("cpu"), auxiliary_weight=weight)
        loss = trainer.step(forward, x, y)
        assert float(loss) == pytest.approx(float(F.cross_entropy(main(body(x)), y).detach()), rel=1e-5)
        assert (aux.weight.grad is not None) == (weight > 0)
