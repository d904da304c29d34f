from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.engine.optim import build_optimizer, build_scheduler, lr_factor, param_groups
from cnnlab.engine.recipe import Recipe
from cnnlab.errors import CnnlabError


def tiny() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))


def test_groups_skip_decay_on_norms_and_biases_and_scale_the_backbone() -> None:
    model = tiny()
    groups = param_groups(model, lr=0.1, weight_decay=1e-4, head=model[3], backbone_lr_scale=0.1)
    by_key = {(g["name"], g["weight_decay"] > 0): g for g in groups}
    assert {id(p) for p in by_key[("backbone", True)]["params"]} == {id(model[0].weight)}
    assert {id(p) for p in by_key[("backbone", False)]["params"]} == {id(model[0].bias), id(model[1].weight),
                                                                      id(model[1].bias)}
    assert by_key[("head", True)]["lr"] == 0.1 and by_key[("backbone", True)]["lr"] == pytest.approx(0.01)


def test_a_recipe_at_an_lr_scale_trains_as_the_former_whole_model_backbone_scale() -> None:
    """prune's recovery and QAT moved from `train(cfg, ..., backbone_lr_scale=s)` (no head: every parameter in the
    scaled group) to `recipe.with_lr_scale(s)`: the same groups at the same learning rates, and the same schedule."""
    recipe = Recipe(optimizer={"_target_": "torch.optim.SGD", "lr": 0.05, "weight_decay": 1e-4, "momentum": 0.9},
                    schedule={"name": "cosine", "warmup_epochs": 1})
    scaled = recipe.with_lr_scale(0.02)
    assert scaled.lr == pytest.approx(0.05 * 0.02) and recipe.lr == 0.05  # a copy: the recipe itself stays
    before, after = tiny(), tiny()
    after.load_state_dict(before.state_dict())
    old = build_optimizer(recipe.optimizer,
                          param_groups(before, recipe.lr, recipe.weight_decay, backbone_lr_scale=0.02))
    new = build_optimizer(scaled.optimizer, param_groups(after, scaled.lr, scaled.weight_decay))
    schedules = [build_scheduler(r.schedule, o, steps_per_epoch=3, epochs=2)
                 for r, o in ((recipe, old), (scaled, new))]
    for _ in range(6):
        assert [g["lr"] for g in old.param_groups] == pytest.approx([g["lr"] for g in new.param_groups])
        for optimizer, schedule in zip((old, new), schedules):
            optimizer.step()
            schedule.step()


def test_frozen_parameters_are_left_out_and_all_frozen_is_an_error() -> None:
    model = tiny()
    model[0].requires_grad_(False)
    trainable = {id(p) for g in param_groups(model, 0.1, 0.0) for p in g["params"]}
    assert id(model[0].weight) not in trainable and id(model[3].weight) in trainable
    model.requires_grad_(False)
    with pytest.raises(CnnlabError, match="nothing to train"):
        param_groups(model, 0.1, 0.0)


def test_optimizer_from_config_target() -> None:
    model = tiny()
    opt = build_optimizer({"_target_": "torch.optim.AdamW", "lr": 1e-3, "betas": [0.9, 0.99], "weight_decay": 0.05},
                          param_groups(model, 1e-3, 0.05))
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["betas"] == (0.9, 0.99)
    with pytest.raises(CnnlabError, match="names no class") as missing:
        build_optimizer({"_target_": "torch.optim.NoSuchOptimizer", "lr": 1.0}, param_groups(model, 1.0, 0.0))
    assert "torch.optim.{" in missing.value.fix and "RMSprop" in missing.value.fix


def test_settings_another_optimizer_does_not_take_are_named_with_the_overrides_that_drop_them() -> None:
    """`optim._target_=torch.optim.RMSprop` on the default optim=sgd failed on `nesterov` with "check the optim
    group"; the refusal's own hint (RMSprop) led there. The fix named now is the one that works."""
    sgd = {"_target_": "torch.optim.RMSprop", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-5}
    with pytest.raises(CnnlabError, match="RMSprop takes no nesterov") as error:
        build_optimizer(sgd, param_groups(tiny(), 0.05, 5e-5))
    assert "~optim.nesterov" in error.value.fix
    followed = {k: v for k, v in sgd.items() if k != "nesterov"}
    assert isinstance(build_optimizer(followed, param_groups(tiny(), 0.05, 5e-5)), torch.optim.RMSprop)
    with pytest.raises(CnnlabError, match="SparseAdam cannot train this network"):
        build_optimizer({"_target_": "torch.optim.SparseAdam", "lr": 0.1}, param_groups(tiny(), 0.1, 0.0))
    with pytest.raises(CnnlabError, match="LBFGS cannot train this network"):  # was: fix keys, then a second error
        build_optimizer({"_target_": "torch.optim.LBFGS", "lr": 0.1, "momentum": 0.9}, param_groups(tiny(), 0.1, 0.0))


@pytest.mark.parametrize("target", ["os.system", "builtins.eval", "torch.optimizer_hack", "subprocess.run"])
def test_an_optimizer_target_outside_torch_optim_is_refused_before_it_is_called(target: str, tmp_path) -> None:
    """A config (a resumed run's saved one too) is untrusted: instantiate() would call whatever `_target_` names."""
    marker = tmp_path / "ran"
    with pytest.raises(CnnlabError, match="torch.optim class") as error:
        build_optimizer({"_target_": target, "_args_": [f"touch {marker}"]}, param_groups(tiny(), 1.0, 0.0))
    assert "optim=sgd" in error.value.fix and not marker.exists()


def test_lars_and_every_torch_optim_class_pass_the_rule() -> None:
    from cnnlab.engine.optim import LARS

    assert isinstance(build_optimizer({"_target_": "cnnlab.engine.optim.LARS", "lr": 0.1},
                                      param_groups(tiny(), 0.1, 0.0)), LARS)
    assert isinstance(build_optimizer({"_target_": "torch.optim.RMSprop", "lr": 0.1},
                                      param_groups(tiny(), 0.1, 0.0)), torch.optim.RMSprop)


@pytest.mark.parametrize("cfg, key", [
    ({"_target_": "torch.optim.SGD", "lr": 0.1, "maximize": "off"}, "maximize"),   # text: torch read it as true
    ({"_target_": "torch.optim.AdamW", "lr": 0.1, "amsgrad": "no"}, "amsgrad"),
    ({"_target_": "torch.optim.AdamW", "lr": 0.1, "foreach": "yes"}, "foreach"),  # Optional[bool]
    ({"_target_": "torch.optim.SGD", "lr": 0.1, "dampening": "0.1"}, "dampening"),
])
def test_an_optimizer_argument_of_another_type_is_refused(cfg, key) -> None:
    """Probe 99: `+optim.maximize=off` reached torch as the text 'off', which counts as true (training climbed the
    loss); `+optim.amsgrad=no` turned AMSGrad on."""
    with pytest.raises(CnnlabError, match=f"optim.{key}=") as error:
        build_optimizer(cfg, param_groups(tiny(), 0.1, 0.0))
    assert f"+optim.{key}=" in error.value.fix
    fixed = {**cfg, key: 0.1 if key == "dampening" else False}
    assert build_optimizer(fixed, param_groups(tiny(), 0.1, 0.0)).param_groups[0][key] == fixed[key]
    rprop = {"_target_": "torch.optim.Rprop", "lr": 0.1, "step_sizes": [1e-6, "yes"]}  # probe 102: a traceback
    with pytest.raises(CnnlabError, match="Rprop takes a list of numbers there") as error:
        build_optimizer(rprop, param_groups(tiny(), 0.1, 0.0))
    assert "+optim.step_sizes=[1e-06,50]" in (error.value.fix or "")
    assert isinstance(build_optimizer({**rprop, "step_sizes": [1e-6, 50]}, param_groups(tiny(), 0.1, 0.0)),
                      torch.optim.Rprop)
    with pytest.raises(CnnlabError, match="differentiable=true is for differentiating through the optimizer step"):
        build_optimizer({"_target_": "torch.optim.SGD", "lr": 0.1, "differentiable": True}, param_groups(tiny(), 0.1, 0))
    with pytest.raises(CnnlabError, match="capturable=true is for CUDA graph capture"):
        build_optimizer({**fixed, "capturable": True} if "Adam" in cfg["_target_"] else
                        {"_target_": "torch.optim.Adam", "lr": 0.1, "capturable": True}, param_groups(tiny(), 0.1, 0.0))


def test_a_deleted_weight_decay_leaves_the_optimizer_class_default() -> None:
    """Probe 99: `optim=adamw ~optim.weight_decay` trained at 0.0 where docs/configuration.md says the class's own
    default (AdamW: 0.01) is left."""
    adamw = Recipe(optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3})
    assert adamw.weight_decay == torch.optim.AdamW([torch.zeros(1)]).defaults["weight_decay"] == 0.01
    assert Recipe(optimizer={"_target_": "torch.optim.SGD", "lr": 0.1}).weight_decay == 0.0
    assert Recipe(optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 0}).weight_decay == 0.0


def test_warmup_then_cosine_to_the_floor() -> None:
    kwargs = {"total_steps": 100, "warmup_steps": 10, "name": "cosine", "min_lr_ratio": 0.01}
    assert lr_factor(0, **kwargs) == pytest.approx(0.1)
    assert lr_factor(9, **kwargs) == pytest.approx(1.0)
    assert lr_factor(10, **kwargs) == pytest.approx(1.0)
    assert lr_factor(100, **kwargs) == pytest.approx(0.01)
    factors = [lr_factor(s, **kwargs) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(factors, factors[1:]))


def rates(schedule: dict, lr: float, *, steps_per_epoch: int, epochs: int) -> list[float]:
    """The learning rate of every optimizer step of a run on `schedule` (the `sched` section)."""
    opt = torch.optim.SGD(tiny().parameters(), lr=lr)
    sched = build_scheduler(schedule, opt, steps_per_epoch=steps_per_epoch, epochs=epochs)
    used = []
    for _ in range(steps_per_epoch * epochs):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return used


def test_step_schedule_and_unknown_name() -> None:
    lrs = rates({"name": "step", "warmup_epochs": 0, "step_epochs": 2, "gamma": 0.5}, 1.0, steps_per_epoch=10,
                epochs=6)
    assert lrs[0] == 1.0 and lrs[19] == 1.0 and lrs[20] == 0.5 and lrs[40] == 0.25
    with pytest.raises(CnnlabError, match="unknown schedule"):
        build_scheduler({"name": "sawtooth"}, torch.optim.SGD(tiny().parameters(), lr=1.0), steps_per_epoch=10,
                        epochs=1)


def test_a_warm_up_as_long_as_the_run_is_half_of_it_and_the_rate_decays() -> None:
    """Probe 103: with warmup_epochs equal to the epochs (the default 1 of every 1-epoch run, each of prune's 1-epoch
    fine-tunes between steps) the whole run was warm-up: the rate rose to its peak and never decayed."""
    from cnnlab.engine.optim import warmup_steps

    assert warmup_steps(1, 7, 7) == 3 and warmup_steps(5, 7, 14) == 7 and warmup_steps(0.5, 7, 7) == 4
    assert warmup_steps(1, 7, 14) == 7 and warmup_steps(0, 7, 7) == 0 and warmup_steps(1, 1, 1) == 0
    assert warmup_steps(0.9, 5, 5) == 2 and warmup_steps(0.6, 5, 5) == 3  # probe 106: 4 of 5 ended at the peak
    assert warmup_steps(1, 2, 2) == 0 and warmup_steps(1, 1, 2) == 0 and warmup_steps(1, 3, 3) == 1  # probe 108
    for steps, epochs in ((2, 1), (1, 2), (3, 1)):  # the last step below the peak however short the run
        assert rates({"name": "cosine", "warmup_epochs": 1}, 0.05, steps_per_epoch=steps, epochs=epochs)[-1] < 0.05
    used = rates({"name": "cosine", "warmup_epochs": 1, "min_lr_ratio": 0.01}, 0.05, steps_per_epoch=7, epochs=1)
    assert used[:3] == pytest.approx([0.05 / 3, 0.10 / 3, 0.05]) and used[-1] < 0.01  # up, then down


def test_an_optimizer_without_lr_is_refused_not_trained_at_zero() -> None:
    """A --config-dir optim file without `lr:` trained at learning rate 0 (Recipe.lr read a missing lr as 0.0)."""
    with pytest.raises(CnnlabError, match="the optim settings have no lr") as error:
        Recipe.from_config({"optim": {"_target_": "torch.optim.Adam"}})
    assert "optim.lr=" in error.value.fix
    assert Recipe.from_config({"optim": {"_target_": "torch.optim.Adam", "lr": 0.001}}).lr == 0.001


def test_an_argument_the_optimizer_refuses_gets_a_fix_that_names_a_setting() -> None:
    """Probe 57: `+optim.dampening=0.1` on optim=sgd (nesterov: true) was told to "check the optim group (e.g.
    optim=sgd …)", the group it already used."""
    model = torch.nn.Linear(2, 2)
    sgd = {"_target_": "torch.optim.SGD", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.0}
    with pytest.raises(CnnlabError) as info:
        build_optimizer({**sgd, "dampening": 0.1}, param_groups(model, 0.1, 0.0))
    assert info.value.fix == "set optim.nesterov=false (Nesterov momentum needs momentum > 0 and dampening 0)"
    build_optimizer({**sgd, "dampening": 0.1, "nesterov": False}, param_groups(model, 0.1, 0.0))  # the fix works
    with pytest.raises(CnnlabError) as info:
        build_optimizer({**sgd, "nesterov": False, "momentum": -1.0}, param_groups(model, 0.1, 0.0))
    assert "optim.momentum=-1.0" in (info.value.fix or "")
