import numpy as np
import pytest

import lsnb
from lsnb import profiles, train


def test_quick_mlp_reaches_90_percent_and_cache_returns_identical_weights(caplog):
    caplog.set_level("INFO", logger="lsnb.train")
    net = train.trained("mlp_mnist", "quick", progress=False)
    assert net.data.source == "embedded" and net.test_accuracy >= 0.90
    assert not net.from_cache
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


def test_profiles_and_unknown_names():
    quick = profiles.get_profile("quick")
    assert profiles.get_profile(quick) is quick and quick.with_(k=12).k == 12
    assert profiles.get_profile("paper").n_replicates == 5 and profiles.get_profile("paper").featvis_steps == 100
    with pytest.raises(ValueError, match="unknown profile"):
        profiles.get_profile("huge")
    with pytest.raises(ValueError, match="unknown network"):
        train.trained("gpt", "smoke")
