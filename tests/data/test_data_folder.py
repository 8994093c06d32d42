"""ImageFolder: loading, resizing and cropping, classes, and the promised errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from esser_lab.data.folder import ImageFolder, load_image


def write(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (20, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def test_flat_folder_of_png_and_jpeg(tmp_path: Path) -> None:
    write(tmp_path / "a.png", (255, 0, 0))
    write(tmp_path / "b.JPG", (0, 0, 255), size=(9, 30))
    Image.new("L", (16, 16), 255).save(tmp_path / "c.webp")  # grey images become RGB
    (tmp_path / "notes.txt").write_text("not an image")
    dataset = ImageFolder(tmp_path, 8)
    assert len(dataset) == 3 and dataset.classes == ["."] and dataset.class_to_idx == {".": 0}
    items = [dataset[i] for i in range(3)]
    for item in items:
        assert item["image"].shape == (3, 8, 8) and item["image"].dtype == torch.float32
        assert item["image"].min() >= -1 and item["image"].max() <= 1 and item["label"] == 0
    assert torch.allclose(items[0]["image"][:, 4, 4], torch.tensor([1.0, -1.0, -1.0]), atol=0.02)
    assert torch.allclose(items[1]["image"][:, 4, 4], torch.tensor([-1.0, -1.0, 1.0]), atol=0.03)
    assert torch.allclose(items[2]["image"], torch.ones(3, 8, 8))


def test_class_sub_folders(tmp_path: Path) -> None:
    write(tmp_path / "dog" / "1.png", (0, 255, 0))
    write(tmp_path / "cat" / "deeper" / "2.jpeg", (255, 255, 0))
    write(tmp_path / "cat" / "3.bmp", (255, 255, 255))
    dataset = ImageFolder(tmp_path, 4)
    assert dataset.classes == ["cat", "dog"] and dataset.class_to_idx == {"cat": 0, "dog": 1}
    labels = {path.name: label for path, label in zip(dataset.files, dataset.labels, strict=True)}
    assert labels == {"1.png": 1, "2.jpeg": 0, "3.bmp": 0}
    assert dataset[dataset.files.index(tmp_path / "dog" / "1.png")]["label"] == 1


def test_resize_shorter_side_then_centre_crop(tmp_path: Path) -> None:
    stripes = np.zeros((20, 40, 3), dtype=np.uint8)
    stripes[:, :10] = (0, 255, 0)  # left quarter green, right quarter blue, middle red
    stripes[:, 10:30] = (255, 0, 0)
    stripes[:, 30:] = (0, 0, 255)
    Image.fromarray(stripes).save(tmp_path / "wide.png")
    image = load_image(tmp_path / "wide.png", 8)
    assert image.shape == (3, 8, 8)
    assert (image[0, :, 2:6] > 0.9).all() and (image[1:, :, 2:6] < -0.9).all()


def test_missing_folder_says_it_never_downloads(tmp_path: Path) -> None:
    missing = tmp_path / "celeba"
    with pytest.raises(FileNotFoundError) as error:
        ImageFolder(missing, 8)
    message = str(error.value)
    assert str(missing) in message and "never downloads" in message and "data/README.md" in message
    write(tmp_path / "file.png", (0, 0, 0))
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        ImageFolder(tmp_path / "file.png", 8)


def test_folder_without_images_lists_the_extensions(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "readme.txt").write_text("nothing here")
    with pytest.raises(FileNotFoundError, match=r"no image files.*\.png, \.jpg, \.jpeg, \.bmp"):
        ImageFolder(tmp_path, 8)


def test_corrupt_file_names_the_file(tmp_path: Path) -> None:
    write(tmp_path / "good.png", (1, 2, 3))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG this is not really a png")
    dataset = ImageFolder(tmp_path, 8)
    with pytest.raises(ValueError, match=r"bad\.png"):
        dataset[dataset.files.index(tmp_path / "bad.png")]


def test_bad_size() -> None:
    with pytest.raises(ValueError, match="size must be a positive int"):
        ImageFolder(".", 0)
