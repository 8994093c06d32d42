"""Gen-1's CLIP content and MiDaS structure (esser_lab.gen1.pretrained).

Without ``transformers``: the pre- and post-processing on tensors, the depth convention, the
random frame, the wrappers' logic on stand-in modules with the transformers outputs' names, and
every error (nothing downloads). With ``transformers`` (requirements.txt; skipped where it is
not installed): the pre-processing against the real image processors' classes at ViT-L/14's and
DPT-Large's settings, and the real models at tiny random sizes, saved and read back with
``from_folder``. Nothing is downloaded: every model and processor is built here.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from esser_lab.gen1.method import structure
from esser_lab.gen1.pretrained import (
    CLIP_MEAN,
    CLIP_PREPROCESSING,
    CLIP_REVISION,
    CLIP_STD,
    MIDAS_PREPROCESSING,
    CLIPImageContent,
    ContentEncoder,
    DepthEstimator,
    ImagePreprocessing,
    MiDaSDepth,
    clip_preprocess,
    inverse_depth_to_distance,
    midas_preprocess,
    random_frame,
)
from esser_lab.scale import Scale


def _video(b=2, f=3, h=20, w=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, f, 3, h, w, generator=g) * 2 - 1


class FakeCLIP(nn.Module):
    """Stands in for CLIPVisionModelWithProjection: ``image_embeds`` = a linear map of the pooled
    pixels (records the inputs it saw)."""

    def __init__(self, width: int = 6) -> None:
        super().__init__()
        self.config = SimpleNamespace(projection_dim=width)
        self.proj = nn.Linear(3, width)
        self.seen: list[torch.Tensor] = []

    def forward(self, pixel_values):
        self.seen.append(pixel_values)
        return SimpleNamespace(image_embeds=self.proj(pixel_values.mean(dim=(2, 3))))


class FakeDPT(nn.Module):
    """Stands in for DPTForDepthEstimation: ``predicted_depth`` (n, h, w) = brightness (a
    relative *inverse* depth: bright = near)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(3.0))
        self.seen: list[torch.Tensor] = []

    def forward(self, pixel_values):
        self.seen.append(pixel_values)
        return SimpleNamespace(predicted_depth=self.scale * pixel_values.mean(dim=1))


def test_clip_preprocess_resizes_the_short_side_crops_and_normalises():
    frames = _video(b=2, f=1, h=20, w=28)[:, 0]
    x = clip_preprocess(frames)
    assert x.shape == (2, 3, 224, 224)
    grey = torch.zeros(1, 3, 50, 80)  # 0.5 grey everywhere
    y = clip_preprocess(grey)
    expected = (0.5 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(y[0, :, 100, 100], expected)
    # already at size: only the crop and the normalisation
    exact = torch.rand(1, 3, 224, 224) * 2 - 1
    back = clip_preprocess(exact) * torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    back = back + torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    torch.testing.assert_close(back, (exact + 1) / 2)
    with pytest.raises(ValueError, match=r"RGB \(b, 3, H, W\)"):
        clip_preprocess(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        clip_preprocess(torch.full((1, 3, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="float"):
        clip_preprocess(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_midas_preprocess_maps_to_384_and_back_to_minus_one_one():
    frames = torch.rand(3, 3, 384, 384) * 2 - 1
    torch.testing.assert_close(midas_preprocess(frames), frames)  # mean = std = 0.5
    assert midas_preprocess(frames[:, :, :40, :64]).shape == (3, 3, 384, 384)


def test_inverse_depth_becomes_the_structure_convention():
    # a clip of two frames: background (inverse depth 1) and a near object (inverse depth 5)
    inv = torch.ones(1, 2, 8, 8)
    inv[:, 0, 2:4, 2:4] = 5.0
    inv[:, 1, 2:4, 3:5] = 5.0
    inv[:, 1, 6, 6] = 3.0  # a nearer-than-background point in frame 1 only
    d = inverse_depth_to_distance(inv)
    assert d.shape == (1, 2, 1, 8, 8)
    assert d.min() == 0 and d.max() == 1  # nearest 0, farthest 1
    assert d[0, 0, 0, 0, 0] == 1 and d[0, 0, 0, 2, 2] == 0  # background far, object near
    assert d[0, 1, 0, 6, 6] == pytest.approx(0.5)  # ordered as the inverse depth, one clip scale
    # per clip: a frame without the near object keeps the clip's scale, per frame it does not
    inv2 = inv.clone()
    inv2[:, 1] = torch.linspace(1, 2, 64).view(8, 8)
    assert inverse_depth_to_distance(inv2)[0, 1].min() > 0.7
    assert inverse_depth_to_distance(inv2, per="frame")[0, 1].min() == 0
    # a flat map is all background; a 5-d input is accepted as it is
    assert torch.equal(inverse_depth_to_distance(torch.full((1, 2, 1, 4, 4), 2.0)),
                       torch.ones(1, 2, 1, 4, 4))  # fmt: skip
    with pytest.raises(ValueError, match="one channel"):
        inverse_depth_to_distance(torch.ones(1, 2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"\(b, f, H, W\)"):
        inverse_depth_to_distance(torch.ones(4, 4))
    with pytest.raises(ValueError, match="NaN"):
        inverse_depth_to_distance(torch.full((1, 1, 2, 2), float("inf")))
    with pytest.raises(ValueError, match="per"):
        inverse_depth_to_distance(inv, per="image")


def test_random_frame_is_seeded_and_one_of_the_frames():
    video = _video(b=4, f=5)
    a = random_frame(video, torch.Generator().manual_seed(3))
    b = random_frame(video, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (4, 3, 20, 28)
    for i in range(4):
        assert any(torch.equal(a[i], video[i, j]) for j in range(5))
    with pytest.raises(ValueError, match=r"\(b, f, 3, H, W\)"):
        random_frame(video[:, 0])


def test_clip_content_wrapper_on_a_stand_in():
    model = FakeCLIP(width=6)
    content = CLIPImageContent(model, chunk=3)
    assert isinstance(content, ContentEncoder) and content.content_dim == 6
    frames = _video(b=7, f=1)[:, 0]
    c = content.encode(frames)
    assert c.shape == (7, 6) and c.dtype == torch.float32
    assert [x.shape[0] for x in model.seen] == [3, 3, 1]  # chunked
    assert model.seen[0].shape[1:] == (3, 224, 224)
    torch.testing.assert_close(c[:3], model.proj(clip_preprocess(frames[:3]).mean(dim=(2, 3))))
    video = _video(b=2, f=4)
    picked = content.encode_video(video, torch.Generator().manual_seed(0))
    expected = content.encode(random_frame(video, torch.Generator().manual_seed(0)))
    torch.testing.assert_close(picked, expected)
    assert not any(p.requires_grad for p in model.parameters())
    # a processor's constants replace the defaults
    processor = SimpleNamespace(
        crop_size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    small = CLIPImageContent(FakeCLIP(), processor)
    assert (small.size, small.mean, small.std) == (32, (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(TypeError, match="CLIPVisionModelWithProjection"):
        CLIPImageContent(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="chunk"):
        CLIPImageContent(FakeCLIP(), chunk=0)


def test_midas_wrapper_on_a_stand_in_gives_the_structure_input():
    model = FakeDPT()
    midas = MiDaSDepth(model, chunk=4)
    assert isinstance(midas, DepthEstimator)
    video = torch.full((2, 3, 3, 16, 24), -0.8)  # a dark background ...
    video[:, :, :, 4:10, 6:12] = 0.9  # ... and a bright (near, for the stand-in) object
    inverse = midas.inverse_depth(video)
    assert inverse.shape == (2, 3, 16, 24)
    assert [x.shape for x in model.seen][0] == (4, 3, 384, 384)  # 6 frames in chunks of 4
    depth = midas.depth(video)
    assert depth.shape == (2, 3, 1, 16, 24)
    assert depth.min() >= 0 and depth.max() <= 1
    assert depth[0, 0, 0, 7, 9] < 0.1 and depth[0, 0, 0, 0, 0] > 0.9  # near small, far 1
    s = structure(depth, 2, factor=8)  # blurred and on SD's latent grid (f = 8)
    assert s.shape == (2, 3, 1, 2, 3)
    with pytest.raises(ValueError, match=r"\(b, f, 3, H, W\)"):
        midas.depth(video[:, 0])
    with pytest.raises(ValueError, match="per"):
        MiDaSDepth(FakeDPT(), per="image")


def test_nothing_downloads_at_tiny_with_stand_ins_or_without_a_pinned_commit():
    tiny = Scale("tiny", "cpu", "32-true", 2, "text")
    stand_in = Scale("full", "gpu", "bf16-mixed", None, "bar", pretrained="stand-in")
    full = Scale("full", "gpu", "bf16-mixed", None, "bar", pretrained="published")
    for loader in (CLIPImageContent.from_hub, MiDaSDepth.from_hub):
        with pytest.raises(RuntimeError, match="small or full scale only"):
            loader(tiny, revision=CLIP_REVISION)
        with pytest.raises(RuntimeError, match="stand-ins"):
            loader(stand_in, revision=CLIP_REVISION)
        with pytest.raises(ValueError, match="pinned revision"):
            loader(full, revision="main")
    with pytest.raises(ValueError, match="pinned revision"):
        MiDaSDepth.from_hub(full)  # no commit checked from here: the caller gives one


def test_the_loaders_say_how_to_install_transformers(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    for loader in (CLIPImageContent.from_folder, MiDaSDepth.from_folder):
        with pytest.raises(ImportError, match="pip install transformers"):
            loader(tmp_path)
        with pytest.raises(ImportError, match="pip install transformers"):
            loader(tmp_path / "missing")  # said before the folder is looked at
    full = Scale("full", "gpu", "bf16-mixed", None, "bar", pretrained="published")
    with pytest.raises(ImportError, match="the tiny chapter uses the content code"):
        CLIPImageContent.from_hub(full)


def test_a_missing_folder_is_named():
    pytest.importorskip("transformers")
    for loader, what in (
        (CLIPImageContent.from_folder, "a CLIP model such as openai/"),
        (MiDaSDepth.from_folder, "a DPT depth model such as Intel/dpt-large"),
    ):
        with pytest.raises(FileNotFoundError, match=f"local copy of {what}.*never downloads"):
            loader("/nonexistent/gen1")  # fmt: skip


def test_preprocessing_steps_on_tensors():
    grey = torch.zeros(2, 3, 30, 50)  # 0.5 grey
    spec = ImagePreprocessing(20, crop=(20, 20), mean=(0.5,) * 3, std=(0.25,) * 3)
    assert spec.output_size(30, 50) == (20, 33) and spec.output_size(50, 30) == (33, 20)
    torch.testing.assert_close(spec(grey), torch.zeros(2, 3, 20, 20))
    # no rescale: pixels 0-255; no normalisation
    raw = ImagePreprocessing((30, 50), rescale=None)(grey)
    torch.testing.assert_close(raw, torch.full((2, 3, 30, 50), 127.5))
    # DPT's rule: both sides by the factor nearer to 1, then to a multiple
    dpt = ImagePreprocessing((384, 384), keep_aspect_ratio=True, multiple=32)
    assert dpt.output_size(480, 640) == (384, 512)
    assert ImagePreprocessing((384, 384)).output_size(480, 640) == (384, 384)
    assert ImagePreprocessing((384, 384), resize=False).output_size(7, 9) == (7, 9)
    # a crop larger than the image is zero-padded (the odd extra column on the right)
    padded = ImagePreprocessing((4, 3), resize=False, crop=(4, 6), rescale=None)(grey[:, :, :4, :3])
    assert padded.shape == (2, 3, 4, 6)
    assert (padded[..., 0] == 0).all() and (padded[..., 4:] == 0).all()
    assert (padded[..., 1:4] == 127.5).all()
    for bad, match in (
        (dict(size=0), "size"),
        (dict(size=8, resample="nearest"), "resample"),
        (dict(size=8, keep_aspect_ratio=True), "keep_aspect_ratio"),
        (dict(size=(8, 8), multiple=0), "multiple"),
        (dict(size=8, mean=(0.5,) * 3), "mean and std"),
        (dict(size=8, mean=(0.5,) * 3, std=(0.0,) * 3), "std"),
    ):
        with pytest.raises(ValueError, match=match):
            ImagePreprocessing(**bad)


def test_processor_fields_are_read_or_refused_by_name():
    assert ImagePreprocessing.from_processor(None, CLIP_PREPROCESSING) is CLIP_PREPROCESSING
    stand_in = SimpleNamespace(
        do_resize=True, size={"height": 64, "width": 48}, resample=2, do_center_crop=False,
        crop_size=None, do_rescale=True, rescale_factor=1 / 127.5, do_normalize=True,
        image_mean=0.5, image_std=[0.5, 0.25, 0.5], keep_aspect_ratio=True,
        ensure_multiple_of=16, do_pad=False, do_convert_rgb=True,
    )  # fmt: skip
    spec = ImagePreprocessing.from_processor(stand_in, MIDAS_PREPROCESSING)
    assert spec == ImagePreprocessing(
        (64, 48), "bilinear", None, 1 / 127.5, (0.5,) * 3, (0.5, 0.25, 0.5), True, 16
    )
    unnormalised = SimpleNamespace(do_normalize=False, do_rescale=False, size=32)
    spec = ImagePreprocessing.from_processor(unnormalised, CLIP_PREPROCESSING)
    assert (spec.size, spec.crop, spec.rescale, spec.mean) == (32, (224, 224), None, None)
    for field, value in (
        ("do_pad", True),
        ("resample", 0),  # nearest
        ("size", {"shortest_edge": 224, "longest_edge": 300}),
        ("crop_size", {"shortest_edge": 224}),
        ("do_flip_channel_order", True),  # a step this module does not take
    ):
        processor = SimpleNamespace(**{field: value})
        with pytest.raises(ValueError, match=f"image processor's {field}="):
            ImagePreprocessing.from_processor(processor, CLIP_PREPROCESSING)


def test_dpt_rounding_and_default_to_square_follow_transformers():
    """transformers' constrain_to_multiple_of rounds half to even with lower bound 0 (no floor
    of one multiple): a side that rounds to 0 is refused by name; default_to_square decides
    what a bare int size means."""
    dpt = ImagePreprocessing((32, 32), keep_aspect_ratio=False, multiple=32)
    assert dpt.output_size(64, 64) == (32, 32)
    small = ImagePreprocessing((15, 48), multiple=32)  # 15 / 32 < 0.5: rounds to 0
    with pytest.raises(ValueError, match="DPT's rule"):
        small.output_size(30, 96)
    assert ImagePreprocessing((48, 80), multiple=32).output_size(48, 80) == (64, 64)  # half: even
    for square, expected in ((True, (40, 40)), (False, 40)):
        processor = SimpleNamespace(size=40, default_to_square=square)
        assert ImagePreprocessing.from_processor(processor, CLIP_PREPROCESSING).size == expected
        assert ImagePreprocessing.from_processor(processor, MIDAS_PREPROCESSING).size == expected


def _images(seed=0, h=200, w=300):
    """A random float image (n, 3, h, w) in [0, 1] (noise) and a smooth one (no overshoot)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(2, 3, h, w, generator=g)
    smooth = torch.rand(2, 3, 5, 7, generator=g) * 0.8 + 0.1
    smooth = torch.nn.functional.interpolate(smooth, size=(h, w), mode="bilinear")
    return noise, smooth


def _processed(processor, images01):
    """The real processor's ``pixel_values`` of images (n, 3, H, W) in [0, 1] given as float
    pixels 0-255 (or as 8-bit images when uint8)."""
    pixels = images01 if images01.dtype == torch.uint8 else images01 * 255
    return processor(images=list(pixels), return_tensors="pt")["pixel_values"]


def _torchvision_backed(transformers, name, skip=True):
    """The torchvision-backed processor class that :class:`ImagePreprocessing` follows:
    transformers 5's ``name``, 4.x's ``nameFast``. Where this transformers has none (its
    PIL-backed processor resamples with PIL's own filter): a skip, or None."""
    if int(transformers.__version__.split(".")[0]) >= 5:
        return getattr(transformers, name)
    if hasattr(transformers, f"{name}Fast"):
        return getattr(transformers, f"{name}Fast")
    if skip:
        pytest.skip(f"transformers {transformers.__version__} has no torchvision-backed {name}")
    return None


@pytest.mark.parametrize(
    "settings",
    [
        {},  # ViT-L/14's processor (its preprocessor_config.json's fields)
        {"size": 64, "crop_size": 48},  # a crop smaller than the resize
        {"size": {"height": 40, "width": 40}, "crop_size": 48, "resample": 2},  # padded crop
    ],
)
def test_clip_preprocessing_equals_the_real_processor(settings):
    transformers = pytest.importorskip("transformers")
    config = {"size": 224, "crop_size": 224, "resample": 3, "do_center_crop": True,
              "do_normalize": True, "do_resize": True, "image_mean": list(CLIP_MEAN),
              "image_std": list(CLIP_STD)} | settings  # fmt: skip
    processor = _torchvision_backed(transformers, "CLIPImageProcessor")(**config)
    spec = ImagePreprocessing.from_processor(processor, CLIP_PREPROCESSING)
    for images in _images(h=150, w=210):
        ours = spec(images * 2 - 1)
        torch.testing.assert_close(ours, _processed(processor, images), rtol=0, atol=2e-5)
    # 8-bit: the processor rounds and clamps between its passes: within a grey level or two on
    # a smooth image (no overshoot)
    eight_bit = (_images(h=150, w=210)[1] * 255).round().to(torch.uint8)
    ours = spec(eight_bit.float() / 255 * 2 - 1)
    step = 1 / 255 / min(CLIP_STD)  # one grey level after the normalisation
    assert (ours - _processed(processor, eight_bit)).abs().max() <= 2 * step


@pytest.mark.parametrize(
    "settings",
    [
        {},  # DPT-Large's processor: 384 × 384, mean = std = 0.5
        {"resample": 2},  # bilinear
        {"keep_aspect_ratio": True, "ensure_multiple_of": 32},  # MiDaS's own resize rule
        {"size": {"height": 96, "width": 64}, "keep_aspect_ratio": True, "ensure_multiple_of": 8},
        {"do_normalize": False, "rescale_factor": 1 / 127.5},
    ],
)
def test_dpt_preprocessing_equals_the_real_processor(settings):
    transformers = pytest.importorskip("transformers")
    config = {"size": 384, "resample": 3, "do_normalize": True, "do_resize": True,
              "image_mean": [0.5] * 3, "image_std": [0.5] * 3} | settings  # fmt: skip
    processor = _torchvision_backed(transformers, "DPTImageProcessor")(**config)
    spec = ImagePreprocessing.from_processor(processor, MIDAS_PREPROCESSING)
    for images in _images(h=150, w=210):
        ours = spec(images * 2 - 1)
        torch.testing.assert_close(ours, _processed(processor, images), rtol=0, atol=2e-5)


def test_real_processors_with_unimplemented_fields_are_refused():
    transformers = pytest.importorskip("transformers")
    dpt, clip = transformers.DPTImageProcessor, transformers.CLIPImageProcessor  # either backend
    for processor, field in (
        (dpt(do_pad=True, size_divisor=32), "do_pad"),
        (dpt(resample=0), "resample"),  # nearest
        (clip(size={"shortest_edge": 224, "longest_edge": 300}), "size"),
    ):
        with pytest.raises(ValueError, match=f"image processor's {field}="):
            MiDaSDepth(FakeDPT(), processor)


def test_tiny_random_clip_and_dpt_through_transformers(tmp_path):
    """The real classes at tiny sizes, saved and read back from a folder (runs where installed)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    vision = transformers.CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, projection_dim=12, num_hidden_layers=2,
        num_attention_heads=4, image_size=32, patch_size=8,
    )  # fmt: skip
    clip = transformers.CLIPVisionModelWithProjection(vision)
    clip.save_pretrained(tmp_path / "clip")
    transformers.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(tmp_path / "clip")
    content = CLIPImageContent.from_folder(tmp_path / "clip")
    assert content.content_dim == 12 and content.size == 32
    frames = _video(b=3, f=1, h=40, w=48)[:, 0]
    c = content.encode(frames)
    with torch.no_grad():
        direct = clip(pixel_values=clip_preprocess(frames, 32, content.mean, content.std))
    torch.testing.assert_close(c, direct.image_embeds, rtol=1e-4, atol=1e-5)
    processor = _torchvision_backed(transformers, "CLIPImageProcessor", skip=False)
    if processor is not None:  # the same frames through the saved processor, as pixels 0-255
        processor = processor.from_pretrained(tmp_path / "clip")
        with torch.no_grad():
            through = clip(pixel_values=_processed(processor, (frames + 1) / 2))
        torch.testing.assert_close(c, through.image_embeds, rtol=1e-4, atol=1e-4)
    dpt_config = transformers.DPTConfig(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=37,
        image_size=32, patch_size=8, backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 8, 8, 8], fusion_hidden_size=8, head_in_index=-1,
    )  # fmt: skip
    dpt = transformers.DPTForDepthEstimation(dpt_config)
    dpt.save_pretrained(tmp_path / "dpt")
    transformers.DPTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(
        tmp_path / "dpt"
    )
    midas = MiDaSDepth.from_folder(tmp_path / "dpt")
    assert midas.size == 32
    video = _video(b=1, f=2, h=24, w=24)
    depth = midas.depth(video)
    assert depth.shape == (1, 2, 1, 24, 24) and depth.min() == 0 and depth.max() == 1
    processor = _torchvision_backed(transformers, "DPTImageProcessor", skip=False)
    if processor is not None:  # the raw prediction: the model on the processor's pixel values
        processor = processor.from_pretrained(tmp_path / "dpt")
        with torch.no_grad():
            raw = dpt(pixel_values=_processed(processor, (video[0] + 1) / 2)).predicted_depth
        back = torch.nn.functional.interpolate(raw[:, None], size=(24, 24), mode="bicubic")
        torch.testing.assert_close(midas.inverse_depth(video)[0], back[:, 0], rtol=1e-4, atol=1e-4)
    # a folder without preprocessor_config.json: the defaults (DPT-Large's)
    (tmp_path / "dpt" / "preprocessor_config.json").unlink()
    assert MiDaSDepth.from_folder(tmp_path / "dpt").preprocessing == MIDAS_PREPROCESSING
    # float16 weights read as asked
    half = CLIPImageContent.from_folder(tmp_path / "clip", dtype=torch.float16)
    assert next(half.model.parameters()).dtype == torch.float16
