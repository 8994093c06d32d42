"""The released guided-inpainting layout: key names and shapes written out from the official
``GIResNetGenerator`` (runwayml/guided-inpainting, gi/modules/gi/lama_guided.py), independently of
our classes; a Lightning 1.x file in that layout (callback class as a dict key, an OmegaConf
``DictConfig`` under hyper_parameters, the discriminator/RAFT/perceptual-loss tensors beside)
loads strictly; other layouts are refused with a message naming the expected one."""

import sys
import types
from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest
import torch

from esser_lab.keyframe.checkpoint import load_keyframe_generator, read_official_state
from esser_lab.keyframe.model import KeyframeConfig, KeyframeGenerator, count_parameters
from esser_lab.weights import WeightsError

# FFC blocks as in ours.yaml, at tiny widths; 3 blocks with keyframes in the first 2
SMALL_FFC = replace(
    KeyframeConfig.tiny(), ngf=8, n_downsampling=2, block_type="ffc", n_blocks=3, n_cross=2,
    num_latents_sqrt=2, pos_bands=4,
)  # fmt: skip


def _bn(prefix: str, c: int) -> dict:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}  # fmt: skip


def _linear(prefix: str, c_out: int, c_in: int, conv: bool = False) -> dict:
    shape = (c_out, c_in, 1, 1) if conv else (c_out, c_in)
    return {f"{prefix}.weight": shape, f"{prefix}.bias": (c_out,)}


def official_shapes(c: KeyframeConfig) -> dict[str, tuple]:
    """{key: shape} of GIResNetGenerator(ours.yaml-style kwargs) written from the official code."""
    ngf, nd, w, heads = c.ngf, c.n_downsampling, c.width, c.read_write_heads
    s = {"model.1.conv.weight": (ngf, 4, 7, 7), **_bn("model.1.norm", ngf)}
    for i in range(nd):
        c_in, c_out = min(c.max_features, ngf * 2**i), min(c.max_features, ngf * 2 ** (i + 1))
        s[f"model.{2 + i}.conv.weight"] = (c_out, c_in, 3, 3)
        s.update(_bn(f"model.{2 + i}.norm", c_out))
    li = 2 + nd
    s[f"model.{li}.latents"] = (c.num_latents_sqrt**2, w)
    s.update(_linear(f"model.{li}.project", w, w + 2 + 4 * c.pos_bands, conv=True))
    g = int(w * c.ffc_ratio)
    lo = w - g
    for j in range(c.n_blocks):
        b = f"model.{li + 1 + j}"
        for ln in ("ln1", "ln2"):
            s[f"{b}.read.{ln}.weight"] = s[f"{b}.read.{ln}.bias"] = (w,)
            s.update(_bn(f"{b}.write.{ln}", w))
        for d in ("dense1", "dense2"):
            s.update(_linear(f"{b}.read.mlp.{d}", w, w))
            s.update(_linear(f"{b}.write.mlp.{d}", w, w, conv=True))
        s.update(_linear(f"{b}.read.to_logits", heads, w, conv=True))
        s.update(_linear(f"{b}.read.to_values", w, w, conv=True))
        s.update(_linear(f"{b}.read.projection", w, w))
        s.update(_linear(f"{b}.write.to_logits", heads, w, conv=True))
        s.update(_linear(f"{b}.write.to_values", w, w))
        s.update(_linear(f"{b}.write.projection", w, w, conv=True))
        for a in ("attn1", "attn2"):
            s[f"{b}.{a}.attn.layernorm1.weight"] = s[f"{b}.{a}.attn.layernorm1.bias"] = (w,)
            for p in ("query", "key", "value"):
                s.update(_linear(f"{b}.{a}.attn.{p}", w, w))
            s.update(_linear(f"{b}.{a}.projection", w, w))
            s[f"{b}.{a}.ln_premlp.weight"] = s[f"{b}.{a}.ln_premlp.bias"] = (w,)
            s.update(_linear(f"{b}.{a}.mlp.dense1", w, w))
            s.update(_linear(f"{b}.{a}.mlp.dense2", w, w))
        for blk in ("block1", "block2"):
            for cv in ("conv1", "conv2"):
                f = f"{b}.{blk}.{cv}"
                s[f"{f}.ffc.convl2l.weight"] = (lo, lo, 3, 3)
                s[f"{f}.ffc.convl2g.weight"] = (g, lo, 3, 3)
                s[f"{f}.ffc.convg2l.weight"] = (lo, g, 3, 3)
                s[f"{f}.ffc.convg2g.conv1.0.weight"] = (g // 2, g, 1, 1)
                s.update(_bn(f"{f}.ffc.convg2g.conv1.1", g // 2))
                s[f"{f}.ffc.convg2g.fu.conv_layer.weight"] = (g, g, 1, 1)
                s.update(_bn(f"{f}.ffc.convg2g.fu.bn", g))
                s[f"{f}.ffc.convg2g.conv2.weight"] = (g, g // 2, 1, 1)
                s.update(_bn(f"{f}.bn_l", lo))
                s.update(_bn(f"{f}.bn_g", g))
    up = li + 1 + c.n_blocks + 1  # after the DropLatentLayer
    for i in range(nd):
        mult = 2 ** (nd - i)
        c_in, c_out = min(c.max_features, ngf * mult), min(c.max_features, ngf * mult // 2)
        s[f"model.{up + 3 * i}.weight"] = (c_in, c_out, 3, 3)  # ConvTranspose2d
        s[f"model.{up + 3 * i}.bias"] = (c_out,)
        s.update(_bn(f"model.{up + 3 * i + 1}", c_out))
    last = up + 3 * nd + 1  # after the ReflectionPad2d
    s[f"model.{last}.weight"], s[f"model.{last}.bias"] = (3, ngf, 7, 7), (3,)
    for i in range(c.n_cross):
        s.update(_linear(f"deformable_writes.{i}.q", w, 2 * w + 1, conv=True))
        s.update(_linear(f"deformable_writes.{i}.v", w, w + 1, conv=True))
    return s


def test_paper_config_matches_the_official_layout_and_count():
    with torch.device("meta"):
        model = KeyframeGenerator(KeyframeConfig.paper())
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    official = official_shapes(KeyframeConfig.paper())
    assert ours == official
    params = sum(
        int(np.prod(shape)) for k, shape in official.items()
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )  # fmt: skip
    assert count_parameters(model) == params == 47_571_139
    assert "model.5.latents" in ours and ours["model.5.project.weight"] == (512, 770, 1, 1)


class _FakeModule(types.ModuleType):
    pass


def _classes() -> tuple[dict, type, type]:
    """Fake pytorch_lightning and omegaconf modules: the pickle names their classes."""
    names = ["pytorch_lightning", "pytorch_lightning.callbacks",
             "pytorch_lightning.callbacks.model_checkpoint", "omegaconf", "omegaconf.dictconfig",
             "omegaconf.base", "omegaconf.nodes"]  # fmt: skip
    modules = {name: _FakeModule(name) for name in names}
    checkpoint_cls = type("ModelCheckpoint", (), {"__module__": names[2]})
    modules[names[2]].ModelCheckpoint = checkpoint_cls
    config_cls = type("DictConfig", (), {"__module__": "omegaconf.dictconfig"})
    modules["omegaconf.dictconfig"].DictConfig = config_cls
    meta_cls = type("ContainerMetadata", (), {"__module__": "omegaconf.base"})
    modules["omegaconf.base"].ContainerMetadata = meta_cls
    node_cls = type("AnyNode", (), {"__module__": "omegaconf.nodes"})
    modules["omegaconf.nodes"].AnyNode = node_cls
    return modules, checkpoint_cls, (config_cls, meta_cls, node_cls)


def _official_ckpt(generator_state: dict, path, extra_global: bool = False) -> None:
    modules, checkpoint_cls, (config_cls, meta_cls, node_cls) = _classes()
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        meta = meta_cls()  # omegaconf 2.1's ContainerMetadata fields, as it pickles them
        any_type = __import__("typing").Any
        meta.__dict__.update(ref_type=any_type, object_type=dict, optional=True, key=None,
                             flags={}, flags_root=False, resolver_cache=defaultdict(dict),
                             key_type=any_type, element_type=any_type)  # fmt: skip
        node = node_cls()
        node.__dict__.update(_val=64)
        hparams = config_cls()
        hparams.__dict__.update(_metadata=meta, _content={"ngf": node})
        if extra_global:
            hparams.__dict__["hook"] = types.SimpleNamespace()  # a global outside the list
        state = {f"generator.{k}": v for k, v in generator_state.items()}
        state["discriminator.model0.0.weight"] = torch.zeros(2, 3, 4, 4)
        state["flow.fnet.conv1.weight"] = torch.zeros(2, 3, 7, 7)
        state["loss_resnet_pl.impl.conv1.weight"] = torch.zeros(2, 3, 3, 3)
        torch.save(
            {
                "epoch": 7,
                "global_step": 100_000,
                "pytorch-lightning_version": "1.4.2",
                "callbacks": {checkpoint_cls: {"best_model_score": np.float64(12.5)}},
                "hyper_parameters": hparams,
                "hparams_type": config_cls,
                "state_dict": state,
            },
            path,
        )
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def test_official_checkpoint_round_trip(tmp_path):
    assert {k: tuple(v.shape) for k, v in KeyframeGenerator(SMALL_FFC).state_dict().items()} == (
        official_shapes(SMALL_FFC)
    )
    torch.manual_seed(0)
    source = KeyframeGenerator(SMALL_FFC).eval()
    with torch.no_grad():  # non-default running statistics travel too
        source.model[1].norm.running_mean.uniform_(-1, 1)
    path = tmp_path / "ours.ckpt"
    _official_ckpt(source.state_dict(), path)
    assert "omegaconf" not in sys.modules
    loaded = load_keyframe_generator(path, SMALL_FFC).eval()
    for (k, a), b in zip(source.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    g = torch.Generator().manual_seed(1)
    image, keys = torch.rand(2, 4, 16, 16, generator=g), torch.rand(2, 2, 4, 16, 16, generator=g)
    flows, errors = (
        torch.randn(2, 2, 2, 16, 16, generator=g),
        torch.rand(2, 2, 1, 16, 16, generator=g),
    )
    with torch.no_grad():
        assert torch.equal(source(image, keys, flows, errors), loaded(image, keys, flows, errors))


def test_wrong_layouts_are_named(tmp_path):
    source = KeyframeGenerator(SMALL_FFC)
    bare = tmp_path / "bare.ckpt"
    torch.save({"state_dict": source.state_dict()}, bare)  # our own names, no generator. prefix
    with pytest.raises(WeightsError, match="generator.*layout|layout.*generator"):
        read_official_state(bare)
    with pytest.raises(WeightsError, match="prefix removed"):
        load_keyframe_generator({f"generator.{k}": v for k, v in source.state_dict().items()},
                                SMALL_FFC)  # fmt: skip
    # another config: the shapes differ and the message names the layout and config
    path = tmp_path / "ours.ckpt"
    _official_ckpt(source.state_dict(), path)
    with pytest.raises(WeightsError, match="guided-inpainting Lightning checkpoint layout"):
        load_keyframe_generator(path, replace(SMALL_FFC, n_cross=1))
    with pytest.raises(WeightsError, match="not found"):
        load_keyframe_generator(tmp_path / "missing.ckpt")


def test_a_global_outside_the_allow_list_is_refused(tmp_path):
    path = tmp_path / "odd.ckpt"
    _official_ckpt(KeyframeGenerator(SMALL_FFC).state_dict(), path, extra_global=True)
    with pytest.raises(WeightsError, match="SimpleNamespace|weights-only"):
        read_official_state(path)
