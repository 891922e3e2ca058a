"""The generated scenarios (``synthetic:K``, ``textures:K``, ``shapes:K``, ``blobs:K``) and scikit-learn's ``digits``:
their arrays, determinism, names and errors, and that a nearest-class-mean classifier on raw pixels
learns them but does not solve them. No training."""

import hashlib
import os
import time

import numpy as np
import pytest

from scenarios import ScenarioError, blobs, build_scenario, load_data, scenario_label, scenario_names, synthetic

NEW = ["textures", "shapes", "blobs"]


def sha256(*arrays) -> str:
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


def nearest_class_mean(x_train, y_train, x_test, y_test) -> float:
    """Test accuracy of the nearest training-class mean (Euclidean, raw pixels)."""
    x_train, x_test = (x.reshape(len(x), -1).astype(np.float64) for x in (x_train, x_test))
    means = np.stack([x_train[y_train == c].mean(0) for c in np.unique(y_train)])
    distances = (x_test**2).sum(1)[:, None] - 2 * x_test @ means.T + (means**2).sum(1)
    return float((distances.argmin(1) == y_test).mean())


def test_synthetic_draws_the_same_arrays_as_before_the_generated_families():
    # computed with scenarios/synthetic.py before textures and shapes were added: records of synthetic:K
    # runs stand for these exact images
    assert sha256(*synthetic.make_strokes(4, 10, 0)) == "c294dd69615aa2869d112b5d19b2802865767063829751927a05bc64f527fbb0"
    assert sha256(*synthetic.load("synthetic:5:7:3")) == "28689a1a6fdbfc3d5437cbe3f9a4e580c4b737080097cc8570b22b50f5cac953"
    assert load_data("synthetic:4", 2).family == "strokes"


@pytest.mark.parametrize("name", NEW)
def test_a_generated_family_gives_k_classes_of_28_by_28_grey_images(name):
    data = load_data(f"{name}:4:10:5", 2)
    x_train, y_train, x_test, y_test = data.arrays
    assert x_train.shape == (40, 28, 28) and x_test.shape == (20, 28, 28)
    assert x_train.dtype == x_test.dtype == np.uint8 and y_train.dtype == y_test.dtype == np.int64
    assert np.bincount(y_train).tolist() == [10] * 4 and np.bincount(y_test).tolist() == [5] * 4
    assert data.n_classes == 4 and data.family == name
    assert {os.path.basename(f) for f in data.files} == {"synthetic.py", f"{name}.py"}
    assert synthetic.parse(f"{name}:40") == (40, 100, 20)
    assert x_train.std() > 20  # images, not a blank canvas


@pytest.mark.parametrize("name", NEW)
def test_a_generated_family_is_deterministic_and_its_test_images_are_new(name):
    first, again = synthetic.load(f"{name}:5:20:10"), synthetic.load(f"{name}:5:20:10")
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    train, test = {x.tobytes() for x in first[0]}, {x.tobytes() for x in first[2]}
    assert len(train) == 100 and len(test) == 50 and not train & test


@pytest.mark.parametrize("name", NEW + ["synthetic"])
def test_a_class_is_the_same_however_many_classes_follow_it(name):
    make = synthetic.GENERATED[name].make
    x4, y4 = make(4, 12, 3)
    x8, y8 = make(8, 12, 3)
    assert np.array_equal(x4, x8[:48]) and np.array_equal(y4, y8[:48])


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("suffix", ["", ":", ":1", ":x", ":0:10:5", ":4:0:5", ":4:10:5:1"])
def test_a_bad_generated_name_says_what_is_expected(name, suffix):
    with pytest.raises(ScenarioError, match=rf"expected {name}:CLASSES\[:TRAIN:TEST\] with at least 2 classes, "
                                            rf"e\.g\. {name}:40"):
        load_data(name + suffix, 2)


def test_generated_names_are_listed_and_labelled_like_synthetic():
    assert {"synthetic:K", "textures:K", "shapes:K", "blobs:K", "digits"} <= set(scenario_names())
    assert scenario_label("textures:40", 10) == "textures40-10"
    assert scenario_label("shapes:40", 10) == "shapes40-10"
    assert scenario_label("blobs:40", 10) == "blobs40-10"
    assert scenario_label("synthetic:40", 10) == "synthetic40-10"
    assert scenario_label("digits", None) == "digits-5"


@pytest.mark.parametrize("name, low, high", [
    # raw pixels separate every family's classes well above chance, and none of them trivially
    ("textures", 0.3, 0.95), ("shapes", 0.3, 0.95), ("synthetic", 0.3, 0.95), ("blobs", 0.3, 0.95)])
def test_nearest_class_mean_learns_ten_generated_classes_but_does_not_solve_them(name, low, high):
    data = load_data(f"{name}:10", 5)
    assert [len(a) for a in data.arrays] == [1000, 1000, 200, 200]
    assert low < nearest_class_mean(*data.arrays) < high


@pytest.mark.parametrize("name", NEW)
def test_forty_classes_build_quickly(name):
    start = time.perf_counter()
    synthetic.load(f"{name}:40:100:20")
    assert time.perf_counter() - start < 5  # about 0.3 s on one core


def test_blobs_draw_the_same_arrays_every_time():
    # records of blobs:K runs stand for these exact images
    assert sha256(*synthetic.make_blobs(4, 10, 0)) == "d2e76a8e6fc16e167ccdf36d52c10d376a6dc89618d9b2f22a564f44aedd7252"
    assert sha256(*synthetic.load("blobs:5:7:3")) == "ff7d40fea21067f34ca9d0102a4a321d9c8d127f142c3d60ee5abb0a51c66adb"


def test_blob_classes_differ_by_their_template_not_by_chance():
    """Two classes' mean images lie far apart, against how far the means of two halves of one class
    lie (the spread of a class mean over its images). Measured on 8 classes of 400 images: the
    closest two classes 609 apart, the two halves of a class at most 166."""
    x, y = synthetic.make_blobs(8, 400, seed=0)
    x = x.reshape(len(x), -1).astype(np.float64)
    means = np.stack([x[y == c].mean(0) for c in range(8)])
    between = min(np.linalg.norm(means[a] - means[b]) for a in range(8) for b in range(a + 1, 8))
    within = max(np.linalg.norm(x[y == c][::2].mean(0) - x[y == c][1::2].mean(0)) for c in range(8))
    assert between > 2.5 * within


def test_a_blob_template_is_smooth_and_an_image_shifts_it_around_the_edges():
    template = blobs.blob_class(3)
    assert abs(template.mean()) < 1e-9 and template.std() == pytest.approx(1.0)
    neighbours = np.corrcoef(template.ravel(), np.roll(template, 1, 1).ravel())[0, 1]
    assert neighbours > 0.85  # blurred noise: exp(−1 / (4 σ²)) = 0.94 at σ = 2 pixels
    shifts = np.array([[2, -3], [-5, 5], [0, 0]])
    assert all(np.array_equal(image, np.roll(template, tuple(shift), (0, 1)))
               for image, shift in zip(blobs._shifted(template, shifts), shifts))


def test_digits_are_scikit_learns_digits_upsampled_with_a_fixed_test_split():
    data = load_data("digits", 5)
    x_train, y_train, x_test, y_test = data.arrays
    assert x_train.shape[1:] == x_test.shape[1:] == (28, 28) and x_train.dtype == x_test.dtype == np.uint8
    assert len(x_train) + len(x_test) == 1797 and data.n_classes == 10 and data.family == "digits"
    assert x_train.max() == 255 and x_train.min() == 0
    counts, held = np.bincount(y_train, minlength=10) + np.bincount(y_test, minlength=10), np.bincount(y_test)
    assert len(held) == 10 and np.all(np.abs(held - 0.2 * counts) <= 0.5)  # 20 % of every class
    train, test = {x.tobytes() for x in x_train}, {x.tobytes() for x in x_test}
    assert len(train) == len(x_train) and len(test) == len(x_test) and not train & test  # no image in both
    again = load_data("digits", 5).arrays
    assert all(np.array_equal(a, b) for a, b in zip(data.arrays, again))
    assert [os.path.basename(f) for f in data.files] == ["digits.csv.gz"] and os.path.isfile(data.files[0])
    assert 0.8 < nearest_class_mean(*data.arrays) < 0.95  # measured: 0.897


def test_digits_hold_out_a_validation_split_of_the_training_images():
    data = load_data("digits", 10, validation=0.1)
    x_train, _, x_val, y_val = data.arrays
    assert data.evaluated_on == "validation" and data.n_experiences == 10
    assert len(x_train) + len(x_val) == len(load_data("digits", 10).arrays[0])
    assert np.unique(y_val).tolist() == list(range(10))


@pytest.mark.parametrize("name", ["digits", "textures:4:10:5", "shapes:4:10:5", "blobs:4:10:5"])
def test_the_new_scenarios_build_benchmarks(name):
    scenario = build_scenario(name, n_experiences=2, seed=0)
    assert scenario.image_shape == (1, 28, 28) and len(scenario.benchmark.train_stream) == 2
