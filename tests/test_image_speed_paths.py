"""The fast inference paths of the default image extractor (issue 24) against straightforward references.

``residual-cnn`` batches the crops of several images into one forward pass, folds each BatchNorm into
its conv, computes the high-pass residuals once for the whole ensemble and runs channels-last;
``residual-stats`` computes its residual by shifted slices and its moments over contiguous rows. The
references here are the code before issue 24: one image at a time, the training-time ``embed`` (no
folding), ``scipy.ndimage.convolve``. Answers may differ by float rounding only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from scipy.ndimage import convolve
from torch.nn import functional as F

from provenance.detectors import create_extractor
from provenance.detectors.image import residual_cnn
from provenance.detectors.image.patches import grid_crops
from provenance.detectors.image.residual_cnn import ResidualCNNExtractor, ResidualNet, residual_input
from provenance.detectors.image.residual_stats import ResidualStatsExtractor, highpass_residual

TINY = {"widths": [8, 8, 12, 12, 16, 16], "steps": 8, "batch_size": 8, "max_crops": 9, "patch_size": 32, "seed": 0}
#: sizes in one chunk: exactly one patch, odd sides, wide, tall, more crops than fit in one batch
SIZES = [(32, 32), (33, 47), (40, 200), (200, 41), (64, 64), (96, 130), (300, 310), (35, 35)]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _images(seed: int, sizes: Sequence[tuple[int, int]] = SIZES) -> list[np.ndarray]:
    g = np.random.default_rng(seed)
    out = []
    for h, w in sizes:
        yy, xx = np.mgrid[0:h, 0:w]
        content = 128 + 60 * np.sin(xx / 9.0)[..., None] * np.cos(yy / 13.0)[..., None]
        out.append(np.clip(np.rint(content + g.normal(0, 10, (h, w, 3))), 0, 255).astype(np.uint8))
    return out


def _randomise_batchnorm(ext: ResidualCNNExtractor, seed: int) -> None:
    """Statistics and affine far from the identity, so that folding them is really tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for net in ext.nets:
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                    m.running_var.copy_(torch.rand(m.num_features, generator=g) * 2 + 0.2)
                    m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                    m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)


@pytest.fixture(scope="module")
def cnn() -> ResidualCNNExtractor:
    """Two networks (the default ``jpeg+wild`` ensemble), trained a few steps on three labels."""
    images = _images(0, [(64, 64), (80, 96)] * 6)
    return create_extractor("residual-cnn", **TINY).fit(images, ["a", "b", "c"] * 4)


# ------------------------------------------------------------------------------- references (before issue 24)
def reference_patch_outputs(ext: ResidualCNNExtractor, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    crops = grid_crops(image, ext.patch_size, ext.max_crops)
    x = torch.from_numpy(crops.transpose(0, 3, 1, 2).astype(np.float32))
    with torch.no_grad():
        embs = [net.embed(x) for net in ext.nets]
        probs = [torch.softmax(net.head(e), dim=1) for net, e in zip(ext.nets, embs, strict=True)]
        return torch.cat(embs, dim=1).numpy(), torch.stack(probs).mean(dim=0).numpy()


def reference_features(ext: ResidualCNNExtractor, images: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([reference_patch_outputs(ext, im)[0].mean(axis=0) for im in images])


def reference_log_proba(ext: ResidualCNNExtractor, images: Sequence[np.ndarray]) -> np.ndarray:
    rows = [reference_patch_outputs(ext, im)[1].mean(axis=0) for im in images]
    return np.log(np.clip(np.stack(rows), 1e-12, None))


def _close(fast: np.ndarray, ref: np.ndarray) -> None:
    """Float rounding only: within 1e-4 of the reference's scale."""
    assert fast.shape == ref.shape and fast.dtype == np.float32
    np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))


# ------------------------------------------------------------------------------- residual-cnn
def test_residual_input_is_the_embed_front() -> None:
    """/255, the high-pass bank, *8, clipping and pixel-unshuffle, as one stride-2 convolution."""
    net = ResidualNet(2).eval()
    x = torch.from_numpy(_images(1, [(48, 64)])[0]).permute(2, 0, 1)[None].float()
    x = torch.cat([x, 255 - x, torch.full_like(x, 255.0), (x > 128).float() * 255])  # edges reach the clip
    ref = F.pixel_unshuffle(torch.clamp(F.conv2d(x / 255.0, net.hp, padding=2, groups=3) * 8.0, -3, 3), 2)
    fast = residual_input(x.contiguous(memory_format=torch.channels_last))
    assert fast.shape == ref.shape == (4, 48, 24, 32)
    assert (ref.abs() == 3).any()  # the clip is exercised
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 10, 128])
def test_batched_features_match_one_image_at_a_time(
    cnn: ResidualCNNExtractor, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # batch 1 and 10: an image with more crops than the batch goes alone, others share a pass
    monkeypatch.setattr(residual_cnn, "INFER_PATCHES", batch)
    images = _images(2)
    _close(cnn.features(images), reference_features(cnn, images))
    _close(cnn.predict_log_proba(images), reference_log_proba(cnn, images))
    # an image's features do not depend on the other images of its chunk
    _close(cnn.features(images[2:3]), reference_features(cnn, images[2:3]))
    assert cnn.features([]).shape == (0, cnn.dim)


def test_patch_outputs_match_the_reference(cnn: ResidualCNNExtractor) -> None:
    for image in _images(3, [(32, 32), (100, 37), (300, 310)]):
        emb, probs = cnn.patch_outputs(image)
        ref_emb, ref_probs = reference_patch_outputs(cnn, image)
        _close(emb, ref_emb)
        _close(probs, ref_probs)


def test_folded_batchnorm_matches_with_real_statistics(two_nets_far_from_identity: ResidualCNNExtractor) -> None:
    images = _images(4)
    _close(two_nets_far_from_identity.features(images), reference_features(two_nets_far_from_identity, images))


@pytest.fixture
def two_nets_far_from_identity(cnn: ResidualCNNExtractor) -> ResidualCNNExtractor:
    fresh = create_extractor("residual-cnn", **json.loads(json.dumps(cnn.get_config())))
    fresh.load_state_dict(cnn.state_dict())
    _randomise_batchnorm(fresh, 5)
    return fresh


def test_folded_weights_follow_every_change_of_the_weights(cnn: ResidualCNNExtractor) -> None:
    """The folded convs are cached; a weight or statistic that changes (load_state_dict, in-place
    edits, a training step, a training forward pass) is seen by the next features() call."""
    ext = create_extractor("residual-cnn", **json.loads(json.dumps(cnn.get_config())))
    ext.load_state_dict(cnn.state_dict())
    images = _images(6, [(64, 64), (90, 70)])
    before = ext.features(images)
    _close(before, reference_features(ext, images))
    state_before = {k: v.copy() for k, v in ext.state_dict().items()}

    # in-place edits of BatchNorm statistics and affine weights
    _randomise_batchnorm(ext, 7)
    after_edit = ext.features(images)
    assert np.abs(after_edit - before).max() > 1e-3
    _close(after_edit, reference_features(ext, images))

    # a training step and a training-mode forward pass (running statistics) on one network
    net = ext.nets[0]
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.from_numpy(np.stack([grid_crops(im, 32, 1)[0] for im in images]).transpose(0, 3, 1, 2).astype(np.float32))
    loss = F.cross_entropy(net(x), torch.tensor([0, 1]))
    opt.zero_grad()
    loss.backward()
    opt.step()
    net.eval()
    after_step = ext.features(images)
    assert np.abs(after_step - after_edit).max() > 1e-4
    _close(after_step, reference_features(ext, images))

    # the saved arrays never hold the folded weights: same keys, same shapes as before any inference
    state = ext.state_dict()
    assert list(state) == list(state_before)
    assert all(state[k].shape == state_before[k].shape for k in state)
    # load_state_dict into a live network
    own = {k[len("net1.") :]: torch.from_numpy(v) for k, v in state_before.items() if k.startswith("net1.")}
    ext.nets[1].load_state_dict(own)
    _close(ext.features(images), reference_features(ext, images))


def test_training_works_after_inference(cnn: ResidualCNNExtractor) -> None:
    """fit() after features(): trains as before (training never uses the folded path) and the new
    networks' features match the reference; a refit is reproducible."""
    images = _images(8, [(64, 64), (80, 96)] * 6)
    labels = ["a", "b", "c"] * 4
    ext = create_extractor("residual-cnn", **TINY).fit(images, labels)
    first = ext.features(images[:3])
    ext.fit(images, labels)  # the same seed: the same networks
    np.testing.assert_allclose(ext.features(images[:3]), first, rtol=1e-5, atol=1e-6)
    _close(ext.features(images[:3]), reference_features(ext, images[:3]))
    # training mode forbids the folded path
    ext.nets[0].train()
    with pytest.raises(RuntimeError, match="inference"):
        ext.nets[0].embed_residuals(residual_input(torch.zeros(1, 3, 32, 32)))
    ext.nets[0].eval()


def test_a_network_made_under_inference_mode_is_folded_afresh_each_time() -> None:
    """Inference tensors keep no version counter: nothing is cached, and edits are still seen."""
    x = torch.from_numpy(np.stack(_images(12, [(32, 32), (32, 32)])).transpose(0, 3, 1, 2).astype(np.float32))
    with torch.inference_mode():
        net = ResidualNet(2).eval()
        fast = net.embed_residuals(residual_input(x.contiguous(memory_format=torch.channels_last)))
        torch.testing.assert_close(fast, net.embed(x), rtol=1e-4, atol=1e-5)
        net.body[1].running_var.mul_(4.0)
        fast = net.embed_residuals(residual_input(x.contiguous(memory_format=torch.channels_last)))
        torch.testing.assert_close(fast, net.embed(x), rtol=1e-4, atol=1e-5)


def test_saved_model_arrays_are_unchanged_by_inference(cnn: ResidualCNNExtractor) -> None:
    before = cnn.state_dict()
    cnn.features(_images(9, [(64, 64)]))
    after = cnn.state_dict()
    assert list(before) == list(after)
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
    assert not any("fold" in k for k in after)


# ------------------------------------------------------------------------------- residual-stats
def reference_stats_one(ext: ResidualStatsExtractor, image: np.ndarray) -> np.ndarray:
    """``ResidualStatsExtractor._one`` before issue 24."""
    crops = grid_crops(image, ext.patch_size, ext.max_crops).astype(np.float32)
    laplace = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=np.float32) / 4.0
    res = convolve(crops, laplace[None, :, :, None], mode="reflect")
    grey = res.mean(axis=3)
    p, b = ext.patch_size, ext.spectrum_bins
    spec = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(grey), axes=(1, 2)))).mean(axis=0)
    pooled = spec.reshape(b, p // b, b, p // b).mean(axis=(1, 3)).ravel()
    yy, xx = np.indices((p, p)) - p // 2
    radius = np.sqrt(yy**2 + xx**2).astype(int).ravel()
    radial = (np.bincount(radius, spec.ravel()) / np.maximum(np.bincount(radius), 1))[: p // 2]
    t = ext.truncation
    q = (np.clip(np.rint(grey), -t, t) + t).astype(np.int64)
    levels = 2 * t + 1
    h = np.bincount((q[:, :, :-1] * levels + q[:, :, 1:]).ravel(), minlength=levels**2).astype(np.float64)
    v = np.bincount((q[:, :-1, :] * levels + q[:, 1:, :]).ravel(), minlength=levels**2).astype(np.float64)
    cooc = np.concatenate([h / h.sum(), v / v.sum()])
    flat = res.reshape(-1, 3).astype(np.float64)  # float64: the exact moments the new path must be near
    std = flat.std(axis=0) + 1e-6
    kurt = ((flat - flat.mean(axis=0)) ** 4).mean(axis=0) / std**4
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(flat.T)[np.triu_indices(3, 1)]
    moments = np.concatenate([np.log(std), np.log(kurt + 1e-6), np.nan_to_num(corr)])
    return np.concatenate([pooled, radial, cooc, moments]).astype(np.float32)


def test_laplacian_by_slices_is_bitwise_the_convolution() -> None:
    from provenance.detectors.image.residual_stats import _laplacian_of_pixels

    for image in _images(10, [(64, 64), (97, 131), (300, 64)]):
        crops = grid_crops(image, 64, 16)
        np.testing.assert_array_equal(_laplacian_of_pixels(crops), highpass_residual(crops.astype(np.float32)))


@pytest.mark.parametrize("patch_size", [32, 64])
def test_residual_stats_match_the_reference(patch_size: int) -> None:
    ext = ResidualStatsExtractor(patch_size=patch_size)
    images = [im for im in _images(11) if min(im.shape[:2]) >= patch_size]
    images.append(np.full((patch_size, patch_size + 5, 3), 77, np.uint8))  # flat: zero residual, no correlation
    fast = ext.features(images)
    ref = np.stack([reference_stats_one(ext, im) for im in images])
    assert fast.shape == ref.shape == (len(images), ext.dim) and fast.dtype == np.float32
    # the spectrum and co-occurrences are computed as before (the same bits feed them); the moments
    # are now summed pairwise over contiguous rows: near the float64 values (the old column-wise
    # float32 sums were ~6e-4 off in log-kurtosis on 512 px photos)
    np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-5)
    # float (not uint8) crops take scipy's convolution, as before
    as_float = ext._one(images[0].astype(np.float32))
    np.testing.assert_allclose(as_float, ref[0], rtol=1e-5, atol=1e-5)
