"""xsep.models.xception: architecture, features, backends, and parity with Keras and timm."""

import os

import numpy as np
import pytest
import torch
from legacy_xception import LegacyXception
from torch import nn

from xsep.models import load_keras_weights, load_timm_weights, xception
from xsep.models.weights import keras_layer_map, torch_bn_to_keras


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def randomize_bn(model, generator):
    """BN parameters and statistics far from identity, so a wrong mapping can't hide."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=generator)
                m.bias.uniform_(-0.2, 0.2, generator=generator)
                m.running_mean.uniform_(-0.2, 0.2, generator=generator)
                m.running_var.uniform_(0.5, 1.5, generator=generator)


def calibrate_bn(model, size, batch=8):
    """Running statistics = the batch statistics of one random batch, so eval outputs depend on
    the input as much as training outputs do."""
    momenta = {}
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            momenta[m] = m.momentum
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(torch.randn(batch, 3, size, size))
    for m, momentum in momenta.items():
        m.momentum = momentum
    model.eval()


def relative_error(ours, theirs):
    """max |ours - theirs| over the logits' variation across the batch (not their magnitude)."""
    variation = (theirs - theirs.mean(0)).abs().max()
    assert variation > 1e-2, "the logits hardly depend on the input: the comparison would prove nothing"
    return ((ours - theirs).abs().max() / variation).item()


def test_parameter_counts():
    assert n_params(xception()) == 22_855_952
    assert n_params(xception(include_top=False)) == 20_806_952


@pytest.mark.parametrize(("size", "expected"), [(299, (1, 1000)), (71, (2, 1000))])
def test_output_shape(size, expected):
    model = xception().eval()
    with torch.no_grad():
        assert tuple(model(torch.randn(expected[0], 3, size, size)).shape) == expected


def test_headless_outputs():
    x = torch.randn(1, 3, 99, 99)
    with torch.no_grad():
        assert xception(include_top=False, pooling="max").eval()(x).shape == (1, 2048)
        assert xception(include_top=False, pooling=None).eval()(x).shape == (1, 2048, 3, 3)
        assert xception(num_classes=7, in_chans=1).eval()(torch.randn(1, 1, 99, 99)).shape == (1, 7)


@pytest.mark.parametrize(
    ("output_stride", "reductions"), [(32, [2, 4, 8, 16, 32]), (16, [2, 4, 8, 16, 16]), (8, [2, 4, 8, 8, 8])]
)
def test_features_only(output_stride, reductions):
    model = xception(features_only=True, output_stride=output_stride).eval()
    assert [f["reduction"] for f in model.feature_info] == reductions
    size = 224
    with torch.no_grad():
        maps = model(torch.randn(1, 3, size, size))
    assert [m.shape[1] for m in maps] == [f["num_chs"] for f in model.feature_info] == [64, 128, 256, 728, 2048]
    # the stem's two unpadded convs give (224 - 3) // 2 + 1 - 2 = 109; each pool then halves, rounding up
    stem = (size - 3) // 2 + 1 - 2
    assert [m.shape[2] for m in maps] == [-(-stem // (r // 2)) for r in reductions]
    subset = xception(features_only=True, out_indices=(1, 4)).eval()
    with torch.no_grad():
        assert [m.shape[1] for m in subset(torch.randn(1, 3, size, size))] == [128, 2048]


def test_forward_features_and_head():
    model = xception().eval()
    x = torch.randn(1, 3, 99, 99)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), model(x))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"pooling": "sum"}, ValueError, "pooling must be 'avg', 'max' or None"),
        ({"output_stride": 4}, ValueError, "output_stride must be 8, 16 or 32; got 4"),
        ({"backend": "cudnn"}, ValueError, "backend must be one of"),
        ({"compat": "tf"}, ValueError, "compat must be one of"),
        ({"include_top": True, "pooling": None}, ValueError, "include_top=True needs pooling"),
        ({"drop_rate": 1.0}, ValueError, "drop_rate must be in"),
    ],
)
def test_bad_configuration(kwargs, error, message):
    with pytest.raises(error, match=message):
        xception(**kwargs)


def test_small_input_is_refused():
    with pytest.raises(ValueError, match=r"H, W >= 71; got \(1, 3, 70, 80\)"):
        xception()(torch.randn(1, 3, 70, 80))


def test_xsep_backend_equals_reference_backend_outputs_and_grads():
    torch.manual_seed(0)
    fused = xception(num_classes=10).double()
    reference = xception(num_classes=10, backend="reference").double()
    reference.load_state_dict(fused.state_dict())  # same parameter names
    randomize_bn(fused, torch.Generator().manual_seed(1))
    reference.load_state_dict(fused.state_dict())
    x = torch.randn(2, 3, 75, 75, dtype=torch.float64)
    for mode in ("train", "eval"):
        getattr(fused, mode)()
        getattr(reference, mode)()
        fused.zero_grad()
        reference.zero_grad()
        out_f, out_r = fused(x), reference(x)
        torch.testing.assert_close(out_f, out_r, rtol=1e-9, atol=1e-9)
        out_f.square().sum().backward()
        out_r.square().sum().backward()
        for (name, p_f), p_r in zip(fused.named_parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(p_f.grad, p_r.grad, rtol=1e-7, atol=1e-9, msg=f"grad of {name}")


def test_channels_last_and_grad_checkpointing_change_nothing():
    torch.manual_seed(0)
    model = xception(num_classes=5).double().train()
    x = torch.randn(2, 3, 71, 71, dtype=torch.float64)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out = model(x)
    out.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]

    for variant in ("channels_last", "checkpointing"):
        model.load_state_dict(state)
        model.zero_grad()
        if variant == "channels_last":
            inp = x.contiguous(memory_format=torch.channels_last)
            model.to(memory_format=torch.channels_last)
        else:
            inp = x
            model.set_grad_checkpointing(True)
        out_v = model(inp)
        out_v.sum().backward()
        torch.testing.assert_close(out_v, out, rtol=1e-10, atol=1e-10)
        for g, p in zip(grads, model.parameters(), strict=True):
            torch.testing.assert_close(p.grad, g, rtol=1e-8, atol=1e-10)


def test_drop_rate_drops_in_training_only():
    model = xception(num_classes=10, drop_rate=0.5).train()
    x = torch.randn(2, 3, 71, 71)
    features = model.forward_features(x)
    a, b = model.forward_head(features), model.forward_head(features)
    assert not torch.equal(a, b)
    model.eval()
    features = model.forward_features(x)
    assert torch.equal(model.forward_head(features), model.forward_head(features))


def test_torch_compile_without_graph_breaks():
    model = xception(num_classes=10).eval()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = torch.randn(1, 3, 71, 71)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)


# ---- Keras ------------------------------------------------------------------------------------

os.environ.setdefault("KERAS_BACKEND", "torch")
KERAS_SIZE = 153  # 153 -> 76 -> 74: the first max-pool sees an even size, so TF pads it asymmetrically


@pytest.fixture(scope="module")
def keras_pair():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("the Keras tests run Keras on the torch backend (KERAS_BACKEND=torch)")
    keras.utils.set_random_seed(0)
    keras_model = keras.applications.Xception(
        weights=None, classifier_activation=None, input_shape=(KERAS_SIZE, KERAS_SIZE, 3)
    )
    model = load_keras_weights(xception(), keras_model)
    randomize_bn(model, torch.Generator().manual_seed(2))
    calibrate_bn(model, KERAS_SIZE)
    model.set_compat("keras")
    for keras_layer, module in keras_layer_map(keras_model, model):  # the same statistics in Keras
        if isinstance(module, nn.BatchNorm2d):
            torch_bn_to_keras(module, keras_layer)
    return keras_model, model


def keras_logits(keras_model, x, training):
    out = keras_model(x.permute(0, 2, 3, 1).numpy(), training=training)
    return torch.as_tensor(np.asarray(out.detach().cpu() if hasattr(out, "detach") else out))


def test_keras_parity_eval(keras_pair):
    keras_model, model = keras_pair
    x = torch.randn(4, 3, KERAS_SIZE, KERAS_SIZE)
    with torch.no_grad():
        ours = model.eval()(x)
    assert relative_error(ours, keras_logits(keras_model, x, training=False)) < 1e-4


def test_keras_parity_training_mode(keras_pair):
    keras_model, model = keras_pair
    x = torch.randn(4, 3, KERAS_SIZE, KERAS_SIZE)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        ours = model.train()(x)
    theirs = keras_logits(keras_model, x, training=True)
    model.load_state_dict(state)  # training moved the running statistics of both: restore them
    model.eval()
    for keras_layer, module in keras_layer_map(keras_model, model):
        if isinstance(module, nn.BatchNorm2d):
            torch_bn_to_keras(module, keras_layer)
    assert relative_error(ours, theirs) < 1e-4


def test_keras_parity_fails_with_a_shifted_pool_window(keras_pair):
    keras_model, model = keras_pair
    x = torch.randn(4, 3, KERAS_SIZE, KERAS_SIZE)
    model.set_compat("timm")  # pools padded 1 on every side: the 76->38 windows move by one pixel
    for m in model.modules():  # keep Keras's BN epsilon: only the pool differs
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 1e-3
    try:
        with torch.no_grad():
            ours = model.eval()(x)
        assert relative_error(ours, keras_logits(keras_model, x, training=False)) > 1e-2
    finally:
        model.set_compat("keras")


def test_keras_weights_file(keras_pair, tmp_path):
    keras_model, _ = keras_pair
    path = tmp_path / "xception.weights.h5"
    keras_model.save_weights(path)
    fresh = load_keras_weights(xception(), path)
    expected = load_keras_weights(xception(), keras_model)
    for (name, a), b in zip(expected.state_dict().items(), fresh.state_dict().values(), strict=True):
        if not name.endswith("num_batches_tracked"):  # a counter of training steps, not a weight
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


# ---- timm / Cadene ------------------------------------------------------------------------------


def test_timm_legacy_state_dict_gives_the_same_outputs():
    torch.manual_seed(0)
    legacy = LegacyXception(num_classes=10)
    randomize_bn(legacy, torch.Generator().manual_seed(3))
    calibrate_bn(legacy, KERAS_SIZE)
    model = load_timm_weights(xception(num_classes=10), legacy.state_dict())
    assert model.compat == "timm"
    x = torch.randn(3, 3, KERAS_SIZE, KERAS_SIZE)
    with torch.no_grad():
        for mode in ("eval", "train"):
            getattr(legacy, mode)()
            getattr(model, mode)()
            want = legacy(x)
            assert relative_error(model(x), want) < 1e-4


def test_timm_loader_rejects_a_foreign_state_dict():
    state = LegacyXception(num_classes=10).state_dict()
    state.pop("block3.skip.weight")
    with pytest.raises(ValueError, match=r"missing \['block3.skip.weight'\]"):
        load_timm_weights(xception(num_classes=10), state)
