"""``python -m esser_lab <paper> fit``: help for all papers, typed overrides, a run + resume."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from esser_lab import cli

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ESSER_LAB_DEVICES", "ESSER_LAB_NODES", "ESSER_LAB_SEED", "ESSER_LAB_MAX_STEPS"):
        monkeypatch.delenv(name, raising=False)


def test_module_help_lists_every_paper_and_imports_no_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "esser_lab", "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    for paper in cli.PAPERS:
        assert paper in result.stdout
    probe = "import sys, esser_lab.cli; print('torch' in sys.modules, 'lightning' in sys.modules)"
    imported = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO
    )
    assert imported.stdout.split() == ["False", "False"], imported.stderr


@pytest.mark.parametrize("paper", list(cli.PAPERS))
def test_fit_help(paper: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([paper, "fit", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for stage in cli.paper_stages(paper):
        assert f"  {stage} " in out
    assert "--model." in out and "--data." in out and "--ckpt_path" in out
    # what the paper's command does not offer, and why (chapters 11-19's NOTE), in the help
    assert " ".join(cli.paper_note(paper).split()) in " ".join(out.split())


@pytest.mark.parametrize("paper", list(cli.PAPERS))
def test_every_stage_and_preset_parses(paper: str) -> None:
    for stage, spec in cli.paper_stages(paper).items():
        for preset in cli.PRESETS:
            invocation = cli.parse([paper, "fit", "--stage", stage, "--preset", preset])
            assert invocation.model == spec.model(preset)
            assert invocation.data == spec.data(preset)


def test_overrides_from_flags_set_and_yaml(tmp_path: Path) -> None:
    base = ["taming", "fit", "--preset", "tiny"]
    invocation = cli.parse([*base, "--model.n_embed", "32", "--set", "data.num_train=100"])
    assert invocation.model.n_embed == 32 and invocation.data.num_train == 100
    assert invocation.model.resolution == 16  # the rest is the tiny preset
    config = tmp_path / "run.yaml"
    config.write_text("model:\n  n_embed: 16\n  betas: [0.6, 0.95]\ndata:\n  folder: /images\n")
    invocation = cli.parse([*base, "--config", str(config)])
    assert invocation.model.n_embed == 16 and invocation.model.betas == (0.6, 0.95)
    assert invocation.data.folder == "/images"
    invocation = cli.parse([*base, "--config", str(config), "--model.n_embed", "8"])
    assert invocation.model.n_embed == 8  # a flag beats the file
    # a nested config field (chapter 8's schedules) through a dotted --set
    invocation = cli.parse(
        ["part_discovery", "fit", "--preset", "tiny", "--set", "model.gmrf_weight.start=7"]
    )
    assert invocation.model.gmrf_weight.start == 7
    assert invocation.model.gmrf_weight.factor == 3.14  # the other fields stay


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model.n_embedd", "8"], "unknown VQGANConfig field 'n_embedd'"),
        (["--set", "model.n_embedd=8"], "unknown VQGANConfig field(s) n_embedd"),
        (["--model.n_embed", "eight"], "VQGANConfig.n_embed expects int, got 'eight'"),
        (["--model.legacy", "maybe"], "VQGANConfig.legacy expects bool, got 'maybe'"),
        (["--model.betas", "[0.5]"], "VQGANConfig.betas expects a list of 2 (float, float)"),
        (["--data.num_train", "1.5"], "VQGANData.num_train expects int, got 1.5"),
        (["--model.num_steps", "0"], "VQGANConfig: need disc_start ≥ 0, num_steps ≥ 1"),
        (["--stage", "gpt"], "invalid choice: 'gpt'"),
        (["--set", "n_embed=8"], "--set expects model.FIELD=VALUE"),
    ],
)
def test_bad_values_name_the_field(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(["taming", "fit", "--preset", "tiny", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_yaml_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "run.yaml"
    for text, message in [
        ("model:\n  num_filters: 8\n", "unknown VQGANConfig field(s) num_filters"),
        ("model:\n  n_embed: '8'\n", "VQGANConfig.n_embed expects int, got '8' (str)"),
        ("trainer:\n  max_steps: 8\n", "expected a mapping with 'model:' and/or 'data:'"),
    ]:
        config.write_text(text)
        with pytest.raises(SystemExit):
            cli.parse(["taming", "fit", "--preset", "tiny", "--config", str(config)])
        assert message in capsys.readouterr().err


def _step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


def test_taming_tiny_fit_resume_and_next_stage(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    base = [
        "taming",
        "fit",
        "--preset",
        "tiny",
        "--accelerator",
        "cpu",
        "--output_dir",
        str(tmp_path),
    ]
    data = [
        "--data.num_train",
        "32",
        "--data.num_val",
        "4",
        "--logger",
        "csv",
        "--log_every_n_steps",
        "1",
    ]
    assert cli.main([*base, "--stage", "vqgan", "--max_steps", "2", *data]) == 0
    checkpoints = tmp_path / "vqgan" / "checkpoints"
    last = checkpoints / "last.ckpt"
    assert _step(last) == 2
    first = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    assert (tmp_path / "vqgan" / "vqgan.safetensors").is_file()
    metrics = (tmp_path / "vqgan" / "logs" / "version_0" / "metrics.csv").read_text()
    assert "loss" in metrics.splitlines()[0] and len(metrics.splitlines()) >= 3  # steps 1 and 2

    resumed = [*base, "--stage", "vqgan", "--max_steps", "4", "--ckpt_path", str(last), *data]
    assert cli.main(resumed) == 0
    assert _step(last) == 4
    second = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    assert first.keys() == second.keys()
    assert any(not torch.equal(first[k], second[k]) for k in first)  # two more steps trained

    # the GPT stage reads the VQGAN the first stage exported
    gpt = [*base, "--stage", "transformer", "--max_steps", "1", "--data.num_train", "32"]
    assert cli.main(gpt) == 0
    assert _step(tmp_path / "transformer" / "checkpoints" / "last.ckpt") == 1


def test_missing_first_stage_and_checkpoint_are_clear(tmp_path: Path) -> None:
    base = ["taming", "fit", "--preset", "tiny", "--output_dir", str(tmp_path)]
    with pytest.raises(SystemExit, match="builds on stage 'vqgan'.*train it first"):
        cli.main([*base, "--stage", "transformer"])
    with pytest.raises(SystemExit, match="no such checkpoint file"):
        cli.main([*base, "--ckpt_path", str(tmp_path / "nope.ckpt")])


# --- pretrained networks: --pretrained published|stand-in (esser_lab.pretrained) --------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, list]:
    """An empty data/checkpoints; the two fetchers record their calls and never download.

    torchvision's VGG weights come back as the seeded stand-in's tensors and LPIPS's linear
    layers are written where the download would put them, so a "published" build completes.
    """
    from esser_lab import pretrained

    calls: dict[str, list] = {"torchvision": [], "download": []}
    monkeypatch.setattr(pretrained, "checkpoint_folder", lambda: tmp_path / "checkpoints")

    def fetch_torchvision(name: str) -> dict:
        calls["torchvision"].append(name)
        return pretrained._stand_in_vgg(name, 0)

    def download(url: str, destination: Path, md5: str) -> None:
        calls["download"].append(url)
        destination.parent.mkdir(parents=True, exist_ok=True)
        torch.save(pretrained._stand_in_lin(0), destination)

    monkeypatch.setattr(pretrained, "_fetch_torchvision", fetch_torchvision)
    monkeypatch.setattr(pretrained, "_download", download)
    return calls


def _run(invocation: cli.Invocation, tmp_path: Path) -> cli.Run:
    return cli.Run(
        invocation.paper,
        invocation.stage,
        invocation.preset,
        0,
        tmp_path / invocation.stage,
        None,
        cli.pretrained_choice(invocation),
    )


def test_pretrained_choice_flag_environment_and_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESSER_LAB_PRETRAINED", raising=False)
    monkeypatch.delenv("ESSER_LAB_DEVICE", raising=False)
    small, tiny = ["taming", "fit", "--preset", "small"], ["taming", "fit", "--preset", "tiny"]
    assert cli.pretrained_choice(cli.parse(small)) == "published"
    assert cli.pretrained_choice(cli.parse(tiny)) == "stand-in"
    assert cli.pretrained_choice(cli.parse([*small, "--pretrained", "stand-in"])) == "stand-in"
    monkeypatch.setenv("ESSER_LAB_PRETRAINED", "stand-in")
    assert cli.pretrained_choice(cli.parse(small)) == "stand-in"
    assert cli.pretrained_choice(cli.parse([*small, "--pretrained", "published"])) == "published"


def test_pretrained_published_at_tiny_and_unknown_choice_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.parse(["taming", "fit", "--preset", "tiny", "--pretrained", "published"])
    assert "tiny never downloads" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.parse(["taming", "fit", "--preset", "small", "--pretrained", "random"])
    assert "invalid choice: 'random'" in capsys.readouterr().err


def test_small_vqgan_with_stand_in_lpips_needs_no_file(
    no_network: dict[str, list], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from esser_lab.losses.lpips import LPIPS

    invocation = cli.parse(["taming", "fit", "--preset", "small", "--pretrained", "stand-in"])
    assert invocation.model.perceptual_weight > 0
    plan = cli.paper_stages("taming")["vqgan"].build(
        invocation.model, invocation.data, _run(invocation, tmp_path)
    )
    assert isinstance(plan.system.loss.perceptual_loss, LPIPS)
    assert no_network == {"torchvision": [], "download": []}
    assert not (tmp_path / "checkpoints").exists()
    assert "LPIPS (VGG16): STAND-IN" in capsys.readouterr().out


def test_published_reads_the_placed_file_else_fetches(
    no_network: dict[str, list], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from esser_lab import pretrained

    invocation = cli.parse(["part_discovery", "fit", "--preset", "small"])
    run = _run(invocation, tmp_path)
    assert run.pretrained == "published"
    fetched = cli.vgg19_feature_loss(run)
    assert no_network["torchvision"] == ["vgg19"]
    assert "VGG19 feature loss: published weights." in capsys.readouterr().out

    placed = {k: v + 1.0 for k, v in pretrained._stand_in_vgg("vgg19", 0).items()}
    (tmp_path / "checkpoints" / "vgg19").mkdir(parents=True)
    torch.save(placed, tmp_path / "checkpoints" / "vgg19" / "vgg19.pth")
    read = cli.vgg19_feature_loss(run)
    assert no_network["torchvision"] == ["vgg19"]  # the file, not a second fetch
    first = next(k for k in read.state_dict() if k.endswith("weight"))
    assert torch.equal(read.state_dict()[first], fetched.state_dict()[first] + 1.0)

    cli.lpips(run)
    assert no_network["torchvision"] == ["vgg19", "vgg16"]
    assert len(no_network["download"]) == 1 and (tmp_path / "checkpoints" / "lpips").is_dir()


# --- chapters 11-19 ---------------------------------------------------------------------------

LATER = ("shape_texture", "geofree", "imagebart", "ldm", "keyframe", "gen1", "sd3", "ladd",
         "selfflow")  # fmt: skip


def _tiny(paper: str, out: Path, *extra: str) -> list[str]:
    return [paper, "fit", "--preset", "tiny", "--accelerator", "cpu", "--output_dir", str(out),
            "--logger", "csv", *extra]  # fmt: skip


def test_ldm_tiny_autoencoder_then_latent_diffusion(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    torch.set_num_threads(1)
    assert cli.main(_tiny("ldm", tmp_path, "--stage", "autoencoder", "--max_steps", "2")) == 0
    export = tmp_path / "autoencoder" / "autoencoder.safetensors"
    assert _step(tmp_path / "autoencoder" / "checkpoints" / "last.ckpt") == 2
    # the LDM stage trains on that frozen autoencoder's latents: its weights are the export's
    assert cli.main(_tiny("ldm", tmp_path, "--stage", "ldm", "--max_steps", "2")) == 0
    last = tmp_path / "ldm" / "checkpoints" / "last.ckpt"
    assert _step(last) == 2
    state = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    exported = load_file(export)
    prefix = "ldm.first_stage_model."
    frozen = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    assert frozen.keys() == exported.keys()
    assert all(torch.equal(frozen[k], exported[k]) for k in exported)
    # as the chapter: the UNet's initial weights are those drawn right after seeding
    from esser_lab.ldm.model import LatentDiffusion
    from esser_lab.ldm.run import load_first_stage
    from esser_lab.training import seed_everything

    invocation = cli.parse(_tiny("ldm", tmp_path, "--stage", "ldm"))
    run = cli.Run("ldm", "ldm", "tiny", 0, tmp_path / "ldm", export)
    seed_everything(0)
    built = cli.paper_stages("ldm")["ldm"].build(invocation.model, invocation.data, run)
    first_stage = load_first_stage(export)
    seed_everything(0)
    chapter = LatentDiffusion(invocation.model, first_stage).state_dict()
    assert all(torch.equal(v, chapter[k]) for k, v in built.system.ldm.state_dict().items())
    # a UNet that does not fit the latents is refused with the fix
    with pytest.raises(SystemExit, match="model.unet.image_size=4"):
        cli.main(_tiny("ldm", tmp_path, "--stage", "ldm", "--set", "model.unet.image_size=8"))


@pytest.mark.parametrize("paper", LATER)
def test_every_stage_of_chapters_11_to_19_takes_a_tiny_step(paper: str, tmp_path: Path) -> None:
    """Each stage in order (a later one reads the earlier one's export), one step on 64 items."""
    torch.set_num_threads(1)
    for stage in cli.paper_stages(paper):
        argv = _tiny(paper, tmp_path, "--stage", stage, "--max_steps", "1",
                     "--data.num_train", "64")  # fmt: skip
        assert cli.main(argv) == 0
        assert _step(tmp_path / stage / "checkpoints" / "last.ckpt") == 1


def test_shipped_first_stage_stands_in_at_tiny_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = _tiny("geofree", tmp_path, "--stage", "transformer", "--max_steps", "1",
                 "--data.num_train", "32")  # fmt: skip
    assert cli.main(tiny) == 0
    assert "shipped vqgan (tiny) stands in" in capsys.readouterr().out
    small = ["geofree", "fit", "--preset", "small", "--stage", "transformer",
             "--accelerator", "cpu", "--output_dir", str(tmp_path)]  # fmt: skip
    with pytest.raises(SystemExit, match="builds on stage 'vqgan'.*train it first"):
        cli.main(small)


def test_keyframe_published_perceptual_network_needs_the_users_file(tmp_path: Path) -> None:
    missing = tmp_path / "encoder_epoch_20.pth"
    argv = ["keyframe", "fit", "--preset", "small", "--accelerator", "cpu", "--output_dir",
            str(tmp_path), "--data.num_train", "4", "--pretrained", "published",
            "--model.perceptual_path", str(missing)]  # fmt: skip
    with pytest.raises(SystemExit, match="ADE20k ResNet-50.*not at.*encoder_epoch_20.pth"):
        cli.main(argv)
