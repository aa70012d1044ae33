"""Methods as deltas (issue 16): DM-GAN's hooks are the class DMGAN; ECAGAN and CAE-GAN subclass it; entry points
name instances; module-style plugins keep working; no built-in plugin answers [] to say "nothing"."""
from __future__ import annotations

import dataclasses
import importlib.metadata
import tomllib
import types
from pathlib import Path

import pytest

from harness import hookimpl
from harness.build import prepare_config
from harness.contract.hook_trace import hooks_by_plugin
from harness.contract.plugins import build_plugins
from plugins.attngan import AttnGAN
from plugins.caegan import CAEGAN
from plugins.dfgan import DFGAN
from plugins.dmgan import DMGAN
from plugins.dmgan.model import DMGANGenerator
from plugins.ecagan import ECAGAN

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = build_plugins()


def test_each_class_announces_only_its_own_method():
    assert [m.name for m in DMGAN().harness_methods()] == ["dmgan"]
    assert [m.name for m in ECAGAN().harness_methods()] == ["ecagan"]
    assert [m.name for m in CAEGAN().harness_methods()] == ["caegan"]
    assert sorted(PLUGINS.methods()) == ["attngan", "caegan", "dfgan", "dmgan", "ecagan"]
    assert isinstance(PLUGINS.method_plugins["ecagan"], DMGAN) and isinstance(PLUGINS.method_plugins["caegan"], DMGAN)


def test_a_subclass_that_would_announce_dmgan_again_is_refused():
    with pytest.raises(TypeError, match="inherits DMGAN.harness_methods and would announce dmgan again"):
        type("MyGAN", (DMGAN,), {})


def test_subclasses_inherit_dm_gans_networks_and_losses_but_not_its_weight_import():
    hooks = hooks_by_plugin(PLUGINS.pm)
    shared = {"harness_discriminators", "harness_discriminator_loss", "harness_generator_loss"}
    for name in ("ecagan", "caegan"):
        assert shared <= set(hooks[name]), name
        assert "harness_import_generator_state" not in hooks[name], name
    assert "harness_import_generator_state" in hooks["dmgan"]
    assert ECAGAN.harness_discriminators is DMGAN.harness_discriminators
    assert CAEGAN.harness_generator_loss is DMGAN.harness_generator_loss


class ThirdGAN(DMGAN):
    """A third-party method built on DM-GAN, shipped as a module whose ``plugin`` is an instance."""

    @hookimpl
    def harness_methods(self):
        return [dataclasses.replace(DMGAN().harness_methods()[0], name="thirdgan")]


def test_entry_points_name_instances_and_module_style_plugins_still_work():
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["harness"]
    for name, cls in (("attngan", AttnGAN), ("dmgan", DMGAN), ("ecagan", ECAGAN), ("caegan", CAEGAN),
                      ("dfgan", DFGAN)):
        assert eps[name] == f"plugins.{name}:plugin"
        loaded = importlib.metadata.EntryPoint(name=name, value=eps[name], group="harness").load()
        assert type(loaded) is cls
    # a module of hook functions (no `plugin` attribute) registers itself
    functions = types.ModuleType("function_gan")
    functions.harness_methods = hookimpl(lambda: [dataclasses.replace(DMGAN().harness_methods()[0],
                                                                      name="functiongan")])
    functions.harness_generator = hookimpl(lambda cfg, aux: DMGANGenerator.from_config(cfg))
    plugins = build_plugins(extra=[functions], entry_points=False)
    assert plugins.method_plugins["functiongan"] is functions and plugins.pm.is_registered(functions)
    cfg = prepare_config(PLUGINS, "dmgan", dataset="shapes", data_dir=None, preset="test", overrides=[], seed=0)
    assert isinstance(plugins.method_hooks("functiongan").harness_generator(cfg=cfg, aux={}), DMGANGenerator)
    # an extra module with a `plugin` attribute registers that object, as the source tree's packages do
    module = types.ModuleType("third_party_gan")
    module.plugin = ThirdGAN()
    plugins = build_plugins(extra=[module], entry_points=False)
    assert plugins.method_plugins["thirdgan"] is module.plugin and not plugins.pm.is_registered(module)


def test_methods_without_a_stage_of_their_own_leave_the_hook_to_its_default():
    """AttnGAN, DM-GAN and ECAGAN train only the shared DAMSM stage: they do not implement
    harness_pretrain_stages (nor AttnGAN the encoder hooks) rather than answering [] or the defaults."""
    hooks = hooks_by_plugin(PLUGINS.pm)
    for name in ("attngan", "dmgan", "ecagan"):
        assert "harness_pretrain_stages" not in hooks[name], name
    assert not {"harness_text_encoder", "harness_image_encoder"} & set(hooks["attngan"])
    cfg = prepare_config(PLUGINS, "ecagan", dataset="shapes", data_dir=None, preset="test", overrides=[], seed=0)
    assert PLUGINS.method_hooks("ecagan").harness_pretrain_stages(cfg=cfg) == []  # the harness's default applies
