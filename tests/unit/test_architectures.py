"""The Study 2 classifiers: names, input gradients at every metamer layer, how each connects along
frequency (grouped, fully connected, locally connected), checked on the gradients themselves, Lu's
Tables 2 and 3 layer by layer, the matched-size control, and FakeReLU at matched layers."""

import numpy as np
import pytest

from tests.conftest import require

tf = require("tensorflow")

from audioprobe.metamers import architectures as A  # noqa: E402

SHAPE = (64, 100)  # resized to 32 x 32: resized band i is the mean of input rows 2i and 2i + 1
CLASSES = 8


@pytest.fixture(scope="module")
def models():
    data = np.random.default_rng(1).gamma(2.0, 1.0, (40, *SHAPE)).astype(np.float32)
    return {arch: A.build_classifier(arch, SHAPE, CLASSES, seed=0, normalization_data=data) for arch in A.ARCHS}


@pytest.fixture(scope="module")
def x():
    return tf.constant(np.random.default_rng(2).gamma(2.0, 1.0, (3, *SHAPE)).astype(np.float32))


def row_gradients(model, layer, x, select=lambda out: out):
    """|d sum(select(layer output)^2) / d input| summed over examples and time: one value per input row."""
    sub = A.layer_model(model, [layer])
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(select(sub(x, training=False)[layer]) ** 2)
    grad = tape.gradient(loss, x).numpy()
    assert np.isfinite(grad).all()
    return np.abs(grad).sum(axis=(0, 2))


@pytest.mark.parametrize("arch", A.ARCHS)
def test_builds_with_named_layers(models, arch, x):
    model = models[arch]
    assert model.name == arch
    assert A.metamer_layers(model) == ["input_representation", "conv_0", "conv_1", "dense", "logits"]
    names = [layer.name for layer in model.layers]
    for name in ("input_representation", "resize", "normalize", "conv_0_linear", "conv_0", "conv_1_linear", "conv_1",
                 "pool_0", "dropout_0", "flatten", "dense_linear", "dense", "dropout_1", "logits"):
        assert name in names
    assert tuple(model.output.shape) == (None, CLASSES)
    outputs = A.layer_model(model, A.metamer_layers(model))(x, training=False)
    assert list(outputs) == A.metamer_layers(model)
    shapes = A.representation_shapes(model)
    for layer, value in outputs.items():
        assert tuple(value.shape) == (3, *shapes[layer])
    np.testing.assert_array_equal(outputs["input_representation"].numpy(), x.numpy())
    np.testing.assert_allclose(outputs["logits"].numpy(), model(x, training=False).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", A.ARCHS)
def test_input_gradient_at_every_metamer_layer(models, arch, x):
    """What metamer synthesis needs: d(sum of squares of a layer) / d input, on CPU, all layers at once."""
    layers = A.metamer_layers(models[arch])
    sub = A.layer_model(models[arch], layers)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        outputs = sub(x, training=False)
        losses = {layer: tf.reduce_sum(outputs[layer] ** 2) for layer in layers}
    for layer in layers:
        grad = tape.gradient(losses[layer], x).numpy()
        assert np.isfinite(grad).all(), layer
        assert np.abs(grad).sum() > 0, layer


def test_normalization_adapted_on_resized_data():
    data = np.random.default_rng(3).normal(5.0, 2.0, (50, *SHAPE)).astype(np.float32)
    model = A.build_classifier("conv2d", SHAPE, CLASSES, normalization_data=data)
    normalized = A.layer_model(model, ["normalize"])(data, training=False)["normalize"].numpy()
    assert abs(normalized.mean()) < 1e-3
    assert abs(normalized.std() - 1) < 1e-2


def test_grouped_layer_gradients_stay_in_their_group(models, x):
    """Group g's conv outputs (both stages) depend on input rows 8g..8g+7 only: exactly zero gradient
    elsewhere, non-zero on every one of its own rows."""
    model = models["grouped_temporal"]
    groups = 8
    rows = SHAPE[0] // groups
    assert model.get_layer("conv_0").output.shape[-1] == 128
    conv_0 = A.layer_model(model, ["conv_0_linear", "conv_0_g3"])(x, training=False)
    np.testing.assert_array_equal(conv_0["conv_0_linear"][..., 3 * 16:4 * 16].numpy(), conv_0["conv_0_g3"].numpy())
    for layer, channels in (("conv_0_linear", 16), ("conv_1_linear", 64)):
        for g in range(groups):
            grad = row_gradients(model, layer, x, lambda out, g=g, c=channels: out[..., g * c:(g + 1) * c])
            inside = np.zeros(SHAPE[0], bool)
            inside[g * rows:(g + 1) * rows] = True
            assert (grad[~inside] == 0).all(), (layer, g)
            assert (grad[inside] > 0).all(), (layer, g)


def test_grouped_model_uses_no_grouped_conv(models):
    for layer in models["grouped_temporal"].layers:
        assert getattr(layer, "groups", 1) == 1, layer.name


def test_fc_frequency_mixes_all_rows(models, x):
    """Every single conv_0 channel of fc_frequency depends on every input row."""
    model = models["fc_frequency"]
    for channel in (0, 100, 127):
        grad = row_gradients(model, "conv_0_linear", x, lambda out, c=channel: out[..., c])
        assert (grad > 0).all(), channel


def test_local_frequency_output_bands_see_only_neighbouring_bands(models, x):
    """conv_0 band p reads resized bands p..p+2 (input rows 2p..2p+5); conv_1 band q reads resized bands
    q..q+4 (input rows 2q..2q+9)."""
    model = models["local_frequency"]
    for layer, reach in (("conv_0_linear", 3), ("conv_1_linear", 5)):
        for band in (0, 7, 20, model.get_layer(layer).output.shape[1] - 1):
            grad = row_gradients(model, layer, x, lambda out, b=band: out[:, b])
            inside = np.zeros(SHAPE[0], bool)
            inside[2 * band:2 * (band + reach)] = True
            assert (grad[~inside] == 0).all(), (layer, band)
            assert (grad[inside] > 0).all(), (layer, band)


def test_local_frequency_weights_are_unshared():
    """Each band position has its own kernel: zeroing one position's kernel silences only that band."""
    model = A.build_classifier("local_frequency", SHAPE, CLASSES, seed=0)
    layer = model.get_layer("conv_0_linear")
    assert tuple(layer.kernel.shape) == (30, 9, 32)
    kernel = layer.kernel.numpy()
    assert not np.allclose(kernel[0], kernel[1])
    x = np.random.default_rng(4).normal(size=(2, *SHAPE)).astype(np.float32)
    sub = A.layer_model(model, ["conv_0_linear"])
    before = sub(x, training=False)["conv_0_linear"].numpy()
    kernel[12] = 0
    layer.kernel.assign(kernel)
    after = sub(x, training=False)["conv_0_linear"].numpy()
    assert (after[:, 12] == 0).all() and np.abs(before[:, 12]).sum() > 0
    np.testing.assert_array_equal(np.delete(after, 12, axis=1), np.delete(before, 12, axis=1))


def test_local_layer_custom_gradient_matches_autodiff():
    """The patch extraction's hand-written gradient against autodiff through plain slices + einsum."""
    rng = np.random.default_rng(5)
    x = tf.constant(rng.normal(size=(2, 9, 7, 3)).astype(np.float32))
    layer = A.LocallyConnectedFrequency(4, (3, 2), activation="relu")
    layer.build(x.shape)
    layer.bias.assign(rng.normal(size=layer.bias.shape).astype(np.float32))

    def reference(x):
        bands, frames = 9 - 3 + 1, 7 - 2 + 1
        patches = tf.concat([x[:, i:i + bands, j:j + frames, :] for i in range(3) for j in range(2)], axis=-1)
        return tf.nn.relu(tf.einsum("bftk,fkc->bftc", patches, layer.kernel) + layer.bias[None, :, None, :])

    weights = tf.constant(rng.normal(size=(2, 7, 6, 4)).astype(np.float32))
    grads = []
    for fn in (layer, reference):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = fn(x)
            loss = tf.reduce_sum(weights * out)
        grads.append([g.numpy() for g in tape.gradient(loss, [x, layer.kernel, layer.bias])])
        assert tuple(out.shape) == (2, 7, 6, 4)
    for mine, ref in zip(*grads):
        np.testing.assert_allclose(mine, ref, rtol=1e-5, atol=1e-5)


def test_conv2d_is_the_tutorial_network(models):
    table = A.parameter_table({"tutorial": models["conv2d"]})
    row = table.iloc[0]
    assert row["trainable_params"] == 1_625_608  # TF simple-audio tutorial with 8 classes
    assert row["non_trainable_params"] == 3  # normalization mean, variance, count
    assert row["shape_conv_0"] == "30x30x32" and row["shape_conv_1"] == "28x28x64"


def test_parameter_table_counts(models):
    table = A.parameter_table(models)
    assert list(table["model"]) == list(A.ARCHS)
    for _, row in table.iterrows():
        model = models[row["model"]]
        assert row["total_params"] == model.count_params()
        assert row["trainable_params"] == sum(int(np.prod(v.shape)) for v in model.trainable_weights)
        per_layer = dict(item.split("=") for item in row["layer_params"].split(";"))
        assert sum(int(n) for n in per_layer.values()) == model.count_params()
        assert set(per_layer) == {"normalize", "conv_0", "conv_1", "dense", "logits"}
        for layer, shape in A.representation_shapes(model).items():
            assert row[f"units_{layer}"] == np.prod(shape)
    paired = table.set_index("model")
    for a, b in (("conv2d", "local_frequency"), ("grouped_temporal", "fc_frequency")):  # same sizes, other wiring
        for layer in A.METAMER_LAYERS:
            assert paired.loc[a, f"units_{layer}"] == paired.loc[b, f"units_{layer}"]
    long = A.layer_table(models)
    assert long.groupby("model")["params"].sum().to_dict() == {name: m.count_params() for name, m in models.items()}


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="equal groups"):
        A.build_classifier("grouped_temporal", SHAPE, CLASSES, groups=5)
    with pytest.raises(ValueError, match="unknown"):
        A.build_classifier("conv3d", SHAPE, CLASSES)
    model = A.build_classifier("fc_frequency", SHAPE, CLASSES)
    with pytest.raises(ValueError, match="no layer"):
        A.layer_model(model, ["conv_7"])


def test_same_seed_same_weights():
    """Weights follow ``seed`` alone, whatever the global random state."""
    a = A.build_classifier("grouped_temporal", SHAPE, CLASSES, seed=3)
    tf.keras.utils.set_random_seed(99)
    b = A.build_classifier("grouped_temporal", SHAPE, CLASSES, seed=3)
    c = A.build_classifier("grouped_temporal", SHAPE, CLASSES, seed=4)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_layer("dense_linear").kernel.numpy(), c.get_layer("dense_linear").kernel.numpy())
    kernels = [a.get_layer(f"conv_0_g{g}").kernel.numpy() for g in range(8)]
    assert not np.array_equal(kernels[0], kernels[1])  # every layer has its own seed


# Lu's Table 3 (1D convolutional with grouping), transcribed: layer, output shape after the batch axis,
# parameters. Table 3 names the conv stages Conv1D + ReLU; here conv_<i>_linear holds the weights and
# conv_<i> is its ReLU.
TABLE_3 = [("normalize", (32, 32, 1), 3), ("conv_0", (30, 128), 1664), ("conv_1", (28, 512), 25088),
           ("pool_0", (14, 256, 1), 0), ("flatten", (3584,), 0), ("dense", (512,), 1_835_520),
           ("logits", (8,), 4104)]
# Lu's Table 2 (the tutorial's 2-D model). The table prints 4 for the normalisation, 18,469 for the
# second Conv2D and 0 for the last Dense, which do not add up to its total of 1,625,612: 3 (mean, variance,
# count), 3*3*32*64 + 64 = 18,496 and 128*8 + 8 = 1,032 give the tutorial's 1,625,611 ("about 1.63M").
TABLE_2 = [("normalize", (32, 32, 1), 3), ("conv_0", (30, 30, 32), 320), ("conv_1", (28, 28, 64), 18_496),
           ("pool_0", (14, 14, 64), 0), ("flatten", (12544,), 0), ("dense", (128,), 1_605_760),
           ("logits", (8,), 1032)]


def table_rows(model):
    """(layer, output shape, parameters of the stage) for the layers of Lu's tables."""
    params = A.layer_parameters(model)
    return [(name, tuple(int(v) for v in model.get_layer(name).output.shape[1:]), params.get(name, 0))
            for name, _, _ in TABLE_3]


@pytest.mark.parametrize("arch, table, total", [("grouped_temporal", TABLE_3, 1_866_379), ("conv2d", TABLE_2, 1_625_611)])
def test_default_networks_are_lus_tables(models, arch, table, total):
    model = models[arch]
    assert table_rows(model) == table
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert (model.count_params(), trainable) == (total, total - 3)  # Table 3: 1,866,379 / 1,866,376 / 3


def test_grouped_pool_is_over_time_and_channels(models, x):
    """pool_0[t, c] is the max of conv_1 over frames 2t, 2t+1 and channels 2c, 2c+1 (Table 3's MaxPooling2D
    on the reshaped [frame, channel, 1] map)."""
    out = A.layer_model(models["grouped_temporal"], ["conv_1", "pool_0"])(x, training=False)
    conv_1 = out["conv_1"].numpy()
    expected = conv_1.reshape(3, 14, 2, 256, 2).max(axis=(2, 4))
    np.testing.assert_array_equal(out["pool_0"].numpy()[..., 0], expected)


def test_matched_sizes_control():
    """sizes='matched': every metamer layer (and the pool) of the temporal models has conv2d's size."""
    matched = {arch: A.build_classifier(arch, SHAPE, CLASSES, sizes="matched") for arch in A.ARCHS}
    units = {arch: {layer: int(np.prod(shape)) for layer, shape in
                    A.representation_shapes(model, [*A.METAMER_LAYERS, "pool_0"]).items()}
             for arch, model in matched.items()}
    assert units["conv2d"] == {"input_representation": 6400, "conv_0": 28_800, "conv_1": 50_176, "dense": 128,
                               "logits": 8, "pool_0": 12_544}
    for arch in A.ARCHS:
        assert units[arch] == units["conv2d"], arch
    grouped = matched["grouped_temporal"]
    assert grouped.get_layer("conv_0").output.shape[1:] == (30, 960)
    assert grouped.get_layer("conv_1").output.shape[1:] == (28, 1792)
    assert grouped.count_params() == 2_266_187
    seed_sizes = A.build_classifier("conv2d", SHAPE, CLASSES)  # the 2-D models do not change
    assert matched["conv2d"].count_params() == seed_sizes.count_params()
    with pytest.raises(ValueError, match="metamers.sizes"):
        A.build_classifier("grouped_temporal", SHAPE, CLASSES, sizes="params")
    with pytest.raises(ValueError, match="cannot be split into 8 groups"):  # width 1: 30 / 56 channels
        A.build_classifier("grouped_temporal", SHAPE, CLASSES, sizes="matched", width=1)
    with pytest.raises(ValueError, match="equal groups"):
        A.build_classifier("grouped_temporal", SHAPE, CLASSES, groups=3)


def test_fake_relu_is_relu_forward_identity_backward():
    v = tf.constant([-2.0, -0.5, 0.0, 1.5])
    for fn, expected in ((A.fake_relu, [1, 1, 1, 1]), (tf.nn.relu, [0, 0, 0, 1])):
        with tf.GradientTape() as tape:
            tape.watch(v)
            out = fn(v)
        np.testing.assert_array_equal(out.numpy(), [0, 0, 0, 1.5])
        np.testing.assert_array_equal(tape.gradient(out, v).numpy(), expected)


@pytest.mark.parametrize("arch", A.ARCHS)
def test_matched_relu_gradient_fake_or_true(models, arch, x):
    """A matched ReLU's units with negative pre-activations: 'true' gives them no gradient at all, 'fake'
    passes it on to the input; the values are the same either way."""
    model = models[arch]
    assert A.relu_layers(model) == ["conv_0", "conv_1", "dense"]
    for layer in A.RELU_LAYERS:
        pre = A.layer_model(model, [f"{layer}_linear"])(x, training=False)[f"{layer}_linear"].numpy()
        negative = tf.constant((pre < 0).astype(np.float32))
        assert 0 < negative.numpy().mean() < 1, layer
        grads, values = {}, {}
        for mode in A.RELU_GRADIENTS:
            sub = A.layer_model(model, [layer], relu_gradient=mode)
            with tf.GradientTape() as tape:
                tape.watch(x)
                out = sub(x, training=False)[layer]
                loss = tf.reduce_sum(out * negative)  # only the units that are off
            values[mode], grads[mode] = out.numpy(), tape.gradient(loss, x).numpy()
        np.testing.assert_array_equal(values["fake"], values["true"])
        assert (values["true"][negative.numpy() > 0] == 0).all()
        assert np.abs(grads["true"]).max() == 0, layer
        assert np.abs(grads["fake"]).max() > 0, layer
    with pytest.raises(ValueError, match="relu_gradient"):
        A.layer_model(model, ["conv_0"], relu_gradient="leaky")
