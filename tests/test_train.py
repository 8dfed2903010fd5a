import numpy as np
import pytest

import lsnb
from lsnb import profiles, train


def test_quick_mlp_reaches_90_percent_and_cache_returns_identical_weights(caplog):
    caplog.set_level("INFO", logger="lsnb.train")
    net = train.trained("mlp_mnist", "quick", progress=False)
    assert net.data.source == "embedded" and net.test_accuracy >= 0.90
    assert not net.from_cache
    train.clear_loaded()                                                # read it back from disk
    again = train.trained("mlp_mnist", "quick", progress=False)
    assert again.from_cache and again.test_accuracy == net.test_accuracy
    for a, b in zip(net.model.get_weights(), again.model.get_weights()):
        assert np.array_equal(a, b)
    x = net.data.x_test[:50]
    assert np.array_equal(net.model.predict(x, verbose=0), again.model.predict(x, verbose=0))
    assert "test accuracy" in caplog.text


def test_replicates_differ_and_config_is_in_the_key():
    data = lsnb.data.load_mnist("embedded", verbose=False).subset(300, 100)
    a = train.train("mlp", data, epochs=1, replicate=0, model_kwargs={"hidden": (16,)}, progress=False)
    b = train.train("mlp", data, epochs=1, replicate=1, model_kwargs={"hidden": (16,)}, progress=False)
    c = train.train("mlp", data, epochs=2, replicate=0, model_kwargs={"hidden": (16,)}, progress=False)
    assert not np.array_equal(a.model.get_weights()[0], b.model.get_weights()[0])
    assert not c.from_cache
    assert train.train("mlp", data, epochs=1, replicate=0, model_kwargs={"hidden": (16,)},
                       progress=False).from_cache
    with pytest.raises(ValueError, match="epochs"):
        train.train("mlp", data, epochs=0)


def test_a_process_loads_each_model_once_and_the_key_of_a_net_names_its_data(monkeypatch):
    from lsnb.networks import net_key

    data = lsnb.data.load_mnist("embedded", verbose=False).subset(300, 100)
    other = lsnb.data.load_mnist("embedded", verbose=False).subset(300, 100, seed=1)
    settings = dict(epochs=1, model_kwargs={"hidden": (8,)}, progress=False)
    first = train.train("mlp", data, **settings)
    train.clear_loaded()
    loaded = train.train("mlp", data, **settings)
    monkeypatch.setattr(train.keras.models, "load_model", lambda *a, **k: pytest.fail("read from disk twice"))
    again = train.train("mlp", data, **settings)
    assert again.model is loaded.model and again.from_cache
    assert net_key(first) == net_key(again)
    monkeypatch.undo()
    assert net_key(train.train("mlp", other, **settings)) != net_key(first)   # same settings, other data


def test_profiles_and_unknown_names():
    quick = profiles.get_profile("quick")
    assert profiles.get_profile(quick) is quick and quick.with_(k=12).k == 12
    assert profiles.get_profile("paper").n_replicates == 5 and profiles.get_profile("paper").featvis_steps == 100
    with pytest.raises(ValueError, match="unknown profile"):
        profiles.get_profile("huge")
    with pytest.raises(ValueError, match="unknown network"):
        train.trained("gpt", "smoke")


def test_a_second_trainer_waits_for_the_one_holding_the_key_and_loads_its_model(tmp_path, monkeypatch):
    import json
    import threading

    from lsnb import cache

    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("LSNB_CACHE_LOG", str(log))
    data = lsnb.data.load_mnist("embedded", verbose=False).subset(200, 50)
    settings = dict(epochs=1, model_kwargs={"hidden": (8,)}, progress=False)
    first = train.train("mlp", data, **settings)                       # the model "the other worker" trains
    path = next(tmp_path.glob("model/*.keras"))
    saved = {p: p.read_bytes() for p in (path, path.with_suffix(".meta.json"))}
    for p in saved:
        p.unlink()
    train.clear_loaded()                                                # as in another process
    results = []
    with cache.key_lock(path):                                          # the other worker is still training
        waiter = threading.Thread(target=lambda: results.append(train.train("mlp", data, **settings)))
        waiter.start()
        waiter.join(timeout=3)
        assert waiter.is_alive() and not results                       # it waits instead of training too
        for p, content in saved.items():                               # the other worker writes its entry
            p.write_bytes(content)
    waiter.join(timeout=60)
    (second,) = results
    assert second.from_cache
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        assert np.array_equal(a, b)
    statuses = [json.loads(line)["status"] for line in log.read_text().splitlines()
                if json.loads(line)["kind"] == "model"]
    assert statuses == ["computed", "hit"]


def test_each_epoch_visits_every_example_once_in_its_seeded_order():
    x = np.arange(10, dtype="float32").reshape(10, 1, 1, 1)
    y = np.arange(10)
    orders = train.epoch_orders(10, 3, seed=4)
    assert all(sorted(row) == list(range(10)) for row in orders) and not np.array_equal(orders[0], orders[1])
    assert np.array_equal(orders, train.epoch_orders(10, 3, seed=4))
    assert not np.array_equal(orders, train.epoch_orders(10, 3, seed=5))
    batches = [(np.asarray(a), np.asarray(b)) for a, b in train._tf_dataset(x, y, 4, seed=4, augment=False, epochs=3)]
    assert [len(b) for _, b in batches] == [4, 4, 2] * 3 and train.steps_per_epoch(10, 4) == 3
    assert np.array_equal(np.concatenate([b for _, b in batches]), orders.ravel())
    assert np.array_equal(np.concatenate([a for a, _ in batches]).ravel(), orders.ravel().astype("float32"))


def test_training_ignores_process_wide_random_state_and_other_threads(tmp_path, monkeypatch):
    """A Dask worker's communication thread samples Python's ``random`` while tasks run (dask.sizeof)."""
    import random
    import threading

    import tensorflow as tf

    data = lsnb.data.load_mnist("embedded", verbose=False).subset(300, 50)
    settings = dict(epochs=2, model_kwargs={"hidden": (16,)}, progress=False)
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path / "quiet"))
    quiet = train.train("mlp", data, **settings)
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path / "busy"))
    random.seed(1), np.random.seed(1), tf.random.set_seed(1)
    stop = threading.Event()

    def draw() -> None:
        while not stop.is_set():
            random.random(), np.random.random()
            stop.wait(0.001)

    other = threading.Thread(target=draw)
    other.start()
    try:
        busy = train.train("mlp", data, **settings)
    finally:
        stop.set()
        other.join()
    assert not busy.from_cache
    for a, b in zip(quiet.model.get_weights(), busy.model.get_weights()):
        assert np.array_equal(a, b)


def _small_digits():
    return lsnb.data.load_mnist("embedded", verbose=False).subset(1000, 300)


@pytest.mark.skipif(not train.cpu_has_bf16(), reason="this CPU has no bfloat16 instructions")
def test_bfloat16_training_returns_a_float32_model_in_float32s_accuracy_band(tmp_path, monkeypatch):
    import keras

    from lsnb import cache

    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    data = _small_digits()
    settings = dict(epochs=5, model_kwargs={"hidden": (128, 64)}, progress=False)
    f32 = train.train("mlp", data, **settings)
    bf16 = train.train("mlp", data, precision="bfloat16", **settings)
    assert not bf16.from_cache                                   # its own cache key
    assert f32.config["precision"] == "float32" and bf16.config["precision"] == "bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"
    for layer in bf16.model.layers:                              # lesions and graphs see a float32 net
        assert layer.dtype_policy.name == "float32", layer.name
    assert all(w.dtype == np.float32 for w in bf16.model.get_weights())
    assert np.asarray(bf16.model(data.x_test[:4])).dtype == np.float32
    # trained in bfloat16 arithmetic: the same seed and batches give other weights, of equal quality
    assert not np.array_equal(f32.model.get_weights()[0], bf16.model.get_weights()[0])
    assert f32.test_accuracy > 0.8 and abs(bf16.test_accuracy - f32.test_accuracy) < 0.05
    assert bf16.test_accuracy == train.accuracy(bf16.model, data.x_test, data.y_test)
    again = train.train("mlp", data, precision="bfloat16", **settings)
    assert again.from_cache and again.config["precision"] == "bfloat16"
    assert all(np.array_equal(a, b) for a, b in zip(again.model.get_weights(), bf16.model.get_weights()))
    # float32 models keep the key they had before precision was a setting
    old_key = {key: value for key, value in f32.config.items() if not key.startswith("precision") and key != "entry"}
    old_key["data"] = train._data_fingerprint(data)
    assert cache.entry_path("model", old_key, ext="keras").exists()
    assert cache.entry_path("model", old_key, ext="keras").stem == f32.config["entry"]


def test_a_cpu_without_bfloat16_trains_in_float32_and_says_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    monkeypatch.setattr(lsnb.precision, "cpu_has_bf16", lambda: False)
    caplog.set_level("WARNING", logger="lsnb.train")
    data = _small_digits()
    settings = dict(epochs=1, model_kwargs={"hidden": (16,)}, progress=False)
    f32 = train.train("mlp", data, **settings)
    fallback = train.train("mlp", data, precision="bfloat16", **settings)
    assert fallback.config["precision"] == "float32" and fallback.config["precision_asked"] == "bfloat16"
    assert fallback.from_cache                                   # the float32 model: same key
    assert all(np.array_equal(a, b) for a, b in zip(f32.model.get_weights(), fallback.model.get_weights()))
    assert "no bfloat16" in caplog.text and "float32 training" in fallback.describe()
    with pytest.raises(ValueError, match="precision"):
        train.train("mlp", data, precision="float16", **settings)


def test_cpu_bfloat16_detection_reads_the_flags(tmp_path):
    detect = train.cpu_has_bf16.__wrapped__
    for flags, expected in [("fpu sse2 avx2 avx512f", False), ("fpu avx512f avx512_bf16", True),
                            ("fpu amx_tile amx_bf16", True)]:
        (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert detect(str(tmp_path / "cpuinfo")) is expected
    assert detect(str(tmp_path / "missing")) is False


def test_the_global_dtype_policy_is_restored_when_training_fails(tmp_path, monkeypatch):
    import keras

    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    monkeypatch.setattr(lsnb.precision, "cpu_has_bf16", lambda: True)
    seen = []

    def failing_dataset(*args, **kwargs):
        seen.append(keras.mixed_precision.global_policy().name)
        raise RuntimeError("out of memory")

    monkeypatch.setattr(train, "_tf_dataset", failing_dataset)
    with pytest.raises(RuntimeError, match="out of memory"):
        train.train("mlp", _small_digits(), epochs=1, model_kwargs={"hidden": (8,)}, precision="bfloat16",
                    progress=False)
    assert seen == ["mixed_bfloat16"] and keras.mixed_precision.global_policy().name == "float32"


def test_profiles_name_their_training_precision():
    assert {name: profiles.get_profile(name).precision for name in profiles.PROFILES} == {
        "smoke": "bfloat16", "quick": "bfloat16", "paper": "float32", "paper-dry": "float32"}
    assert all(p.precision in train.PRECISIONS for p in profiles.PROFILES.values())


def test_the_regularized_vgg_on_the_stand_in_trains_at_its_own_learning_rate(monkeypatch):
    asked = {}
    monkeypatch.setattr(train, "train", lambda arch, data, **kw: asked.setdefault(kw["net"], (data.name, kw["lr"])))
    monkeypatch.setattr(train, "dataset", lambda name, prof, seed=0, train_examples=None: lsnb.data.Dataset(
        *[np.zeros((1, 32, 32, 3), "float32"), np.zeros(1, int)] * 2,
        name=profiles.get_profile(prof).vgg_data if name == "vgg_data" else name, source="test"))
    for net in ("vgg", "vgg_unreg", "cnn_mnist"):
        train.trained(net, "smoke", verbose=False)
    assert asked == {"vgg": ("mnist_rgb32", 3e-3), "vgg_unreg": ("mnist_rgb32", 1e-3), "cnn_mnist": ("mnist", 1e-3)}
    asked.clear()
    train.trained("vgg", "paper-dry", verbose=False)
    assert asked == {"vgg": ("cifar10", 1e-3)}


def test_the_bfloat16_policy_stays_in_the_training_thread():
    """Keras keeps its dtype policy per thread: a net built beside a bfloat16 training is float32."""
    import threading

    import keras

    other = []
    with train.dtype_policy("bfloat16"):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        thread = threading.Thread(target=lambda: other.append(lsnb.models.build("mlp", hidden=(4,))))
        thread.start()
        thread.join()
    assert all(layer.compute_dtype == "float32" for layer in other[0].layers)


def test_a_datasets_fingerprint_is_hashed_once_and_keys_the_model_as_its_arrays_do():
    from lsnb import cache

    data = lsnb.data.load_mnist("embedded", verbose=False).subset(300, 100)
    first = train._data_fingerprint(data)
    assert train._data_fingerprint(data) is first                       # memoised per dataset object
    raw = {"name": data.name, "source": data.source, "n_train": 300, "n_test": 100,
           "x_train": data.x_train, "y_train": data.y_train}
    assert cache.config_key({"data": first}) == cache.config_key({"data": raw})   # the key of the arrays
    other = lsnb.data.load_mnist("embedded", verbose=False).subset(300, 100, seed=1)
    assert train._data_fingerprint(other)["x_train"] != first["x_train"]
