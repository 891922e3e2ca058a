"""The named many-class scenarios, on generated data laid out on disk as their loaders expect (nothing
can be downloaded here): CIFAR-100 in torchvision's format, TinyImageNet in its zip's layout."""

import pickle

import numpy as np
import pytest
from PIL import Image

from scenarios import build_scenario, load_data


def write_cifar100(root, per_class=2, classes=100):
    """torchvision's cifar-100-python/{train,test,meta} pickles with ``per_class`` images of each class."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", 1)):
        labels = np.repeat(np.arange(classes), n)
        data = rng.integers(0, 255, (len(labels), 3 * 32 * 32), dtype=np.uint8)
        with open(folder / split, "wb") as fh:
            pickle.dump({"data": data, "fine_labels": labels.tolist(), "coarse_labels": [0] * len(labels)}, fh)
    with open(folder / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(classes)]}, fh)


@pytest.mark.parametrize("n_experiences", [10, 20])
def test_split_cifar100_in_10_and_20_experiences(tmp_path, monkeypatch, n_experiences):
    from torchvision.datasets import cifar

    write_cifar100(tmp_path)
    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)  # generated files: no MD5 to match
    scenario = build_scenario("split_cifar100", n_experiences=n_experiences, seed=0, data_root=str(tmp_path),
                              download=False)
    assert scenario.n_classes == 100 and scenario.image_shape == (3, 32, 32)
    assert len(scenario.benchmark.train_stream) == n_experiences
    assert {len(c) for c in scenario.experience_classes} == {100 // n_experiences}
    warm = load_data("split_cifar100", 6, data_root=str(tmp_path), download=False, first_classes=50)
    assert warm.first_classes == 50 and warm.family == "cifar"


def write_tinyimagenet(root, classes=200, train=2, val=1):
    folder = root / "tinyimagenet" / "tiny-imagenet-200"
    wnids = [f"n{i:08d}" for i in range(classes)]
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    rng = np.random.default_rng(0)
    annotations = []
    for c, wnid in enumerate(wnids):
        images = folder / "train" / wnid / "images"
        images.mkdir(parents=True)
        for i in range(train):
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(images / f"{wnid}_{i}.JPEG", "JPEG")
        for i in range(val):
            name = f"val_{c}_{i}.JPEG"
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "val" / "images" / name, "JPEG")
            annotations.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")


def test_split_tinyimagenet_reads_the_zips_layout(tmp_path):
    write_tinyimagenet(tmp_path)
    data = load_data("split_tinyimagenet", 10, data_root=str(tmp_path), download=False)
    x_train, y_train, x_test, y_test = data.arrays
    assert x_train.shape == (400, 64, 64, 3) and x_train.dtype == np.uint8 and x_test.shape == (200, 64, 64, 3)
    assert np.bincount(y_train).tolist() == [2] * 200 and data.n_classes == 200 and data.family == "tinyimagenet"
    scenario = build_scenario("split_tinyimagenet", n_experiences=20, seed=0, data_root=str(tmp_path), download=False)
    assert scenario.image_shape == (3, 64, 64) and len(scenario.benchmark.train_stream) == 20


def test_a_missing_tinyimagenet_says_where_to_put_it(tmp_path):
    from scenarios import DataMissingError

    with pytest.raises(DataMissingError, match="tiny-imagenet-200/wnids.txt"):
        load_data("split_tinyimagenet", 10, data_root=str(tmp_path), download=False)


@pytest.mark.parametrize("n_experiences", [10, 20])
def test_synthetic_40_in_10_and_20_experiences_gives_every_method_one_budget(n_experiences):
    from ctrl_bench.harness.cells import method_settings
    from ctrl_bench.harness.presets import common_settings

    scenario = build_scenario("synthetic:40", n_experiences=n_experiences, seed=0)
    assert scenario.n_classes == 40 and scenario.image_shape == (1, 28, 28)
    assert len(scenario.benchmark.train_stream) == n_experiences
    assert {len(c) for c in scenario.experience_classes} == {40 // n_experiences}
    assert [len(e.dataset) for e in scenario.benchmark.train_stream] == [100 * 40 // n_experiences] * n_experiences
    data = load_data("synthetic:40", n_experiences)
    assert data.family == "strokes"
    for family in (data.family, "cifar", "mnist"):  # one budget for every data set and method
        common = common_settings("quick", {}, family)
        assert (common["epochs"], common["first_epochs"]) == (30, None)
        for method in ("ctrl", "icarl", "der", "fetril"):
            own = method_settings(method, "quick", family, common, {})
            assert (own["epochs"], own["first_epochs"]) == (30, None), method
    assert common_settings("paper", {}, "cifar")["epochs"] == 100  # the published lengths
    assert common_settings("quick", {"first_epochs": 5}, data.family)["first_epochs"] == 5
