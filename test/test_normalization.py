"""Normalisation statistics: fitting, the transform pair, and storage in safetensors files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from wallwm_core.normalization import (
    NormalizationStats,
    Normalize,
    Unnormalize,
    fit,
)


def _data(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.normal(loc=[0.0, 5.0, -3.0, 100.0], scale=[1.0, 0.1, 20.0, 1e-3], size=(2000, 4))
    data[:, 2] = 0.7  # a constant dimension
    return data


@pytest.mark.parametrize("mode", ["mean_std", "quantile"])
def test_round_trip_is_exact_in_float64(mode) -> None:
    data = _data()
    stats = fit(data, mode)
    normalized = Normalize(stats)(data)
    np.testing.assert_allclose(Unnormalize(stats)(normalized), data, rtol=0, atol=1e-12)
    # Any leading dimensions, torch too.
    batch = torch.from_numpy(data.reshape(4, 500, 4))
    back = stats.unnormalize(stats.normalize(batch))
    assert isinstance(back, torch.Tensor) and back.shape == (4, 500, 4)
    torch.testing.assert_close(back, batch, rtol=0, atol=1e-12)


def test_torch_keeps_dtype_and_matches_numpy() -> None:
    data = _data()
    stats = fit(data)
    data32 = data.astype(np.float32)
    out = stats.normalize(torch.from_numpy(data32))
    assert out.dtype == torch.float32
    # Computed in float64 inside: only the final rounding to float32 differs.
    np.testing.assert_allclose(out.numpy(), stats.normalize(data32.astype(np.float64)), atol=1e-6)
    assert stats.normalize(data32).dtype == np.float32


def test_constant_dimension_stays_finite_and_maps_to_zero() -> None:
    data = _data()
    for mode in ("mean_std", "quantile"):
        stats = fit(data, mode)
        normalized = stats.normalize(data)
        assert np.all(np.isfinite(normalized))
        np.testing.assert_array_equal(normalized[:, 2], 0.0)
        assert stats.std[2] > 0 and stats.q99[2] > stats.q01[2]
    # A large constant still gets a representable, non-empty quantile range.
    stats = fit(np.full((10, 1), 1e12), "quantile")
    assert stats.q99[0] > stats.q01[0]


def test_mean_std_gives_zero_mean_unit_std() -> None:
    data = _data()
    normalized = fit(data, "mean_std").normalize(data)
    varying = [0, 1, 3]
    np.testing.assert_allclose(normalized[:, varying].mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(normalized[:, varying].std(axis=0), 1.0, atol=1e-9)


def test_quantile_maps_quantiles_to_plus_minus_one() -> None:
    data = _data()
    stats = fit(data, "quantile")
    normalized = stats.normalize(data)
    q01, q99 = np.quantile(normalized[:, [0, 1, 3]], [0.01, 0.99], axis=0)
    np.testing.assert_allclose(q01, -1.0, atol=1e-9)
    np.testing.assert_allclose(q99, 1.0, atol=1e-9)
    inside = (data[:, 0] >= stats.q01[0]) & (data[:, 0] <= stats.q99[0])
    assert np.all(np.abs(normalized[inside, 0]) <= 1.0 + 1e-12)
    assert np.any(np.abs(normalized[:, 0]) > 1.0)  # nothing is clipped


def test_wrong_last_dimension_raises() -> None:
    stats = fit(_data())
    with pytest.raises(ValueError, match="last dimension must be 4"):
        stats.normalize(np.zeros((3, 5)))


def test_invalid_stats_and_data_raise() -> None:
    with pytest.raises(ValueError, match="mode"):
        fit(_data(), "minmax")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        fit(np.array([[1.0], [np.nan]]))
    with pytest.raises(ValueError, match=r"\[N >= 1, D >= 1\]"):
        fit(np.zeros(5))
    ones = np.ones(2)
    with pytest.raises(ValueError, match="std must be positive"):
        NormalizationStats("mean_std", mean=ones, std=np.zeros(2), q01=-ones, q99=ones)
    with pytest.raises(ValueError, match="q99 must exceed q01"):
        NormalizationStats("mean_std", mean=ones, std=ones, q01=ones, q99=ones)


def test_save_load_is_bit_exact(tmp_path: Path) -> None:
    stats = fit(_data(), "quantile")
    path = tmp_path / "norm.safetensors"
    stats.save(path)
    loaded = NormalizationStats.load(path)
    assert loaded.mode == "quantile"
    for name in ("mean", "std", "q01", "q99"):
        assert getattr(loaded, name).tobytes() == getattr(stats, name).tobytes()


def test_tensors_inside_a_larger_checkpoint(tmp_path: Path) -> None:
    stats = fit(_data(), "mean_std")
    tensors = {"model.weight": torch.ones(2, 2), **stats.to_tensors("action_norm.")}
    path = tmp_path / "checkpoint.safetensors"
    safetensors.torch.save_file(tensors, str(path))
    loaded = NormalizationStats.from_tensors(
        safetensors.torch.load_file(str(path)), "action_norm.", source=str(path)
    )
    assert loaded.mode == "mean_std"
    np.testing.assert_array_equal(loaded.mean, stats.mean)
    np.testing.assert_array_equal(loaded.std, stats.std)


def test_truncated_file_raises_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "norm.safetensors"
    fit(_data()).save(path)
    path.write_bytes(path.read_bytes()[:-16])
    with pytest.raises(ValueError, match=r"norm\.safetensors.*not a readable safetensors"):
        NormalizationStats.load(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such normalisation file"):
        NormalizationStats.load(tmp_path / "absent.safetensors")


def test_missing_key_raises_naming_key_and_file(tmp_path: Path) -> None:
    tensors = fit(_data()).to_tensors()
    del tensors["q99"]
    path = tmp_path / "partial.safetensors"
    safetensors.torch.save_file(tensors, str(path))
    with pytest.raises(ValueError, match=r"partial\.safetensors.*'q99'"):
        NormalizationStats.load(path)


def test_shape_mismatch_and_non_finite_raise_naming_the_key() -> None:
    tensors = fit(_data()).to_tensors("n/")
    bad_shape = {**tensors, "n/std": torch.ones(3, dtype=torch.float64)}
    with pytest.raises(ValueError, match="ckpt: key 'n/std' has shape"):
        NormalizationStats.from_tensors(bad_shape, "n/", source="ckpt")
    bad_value = {**tensors, "n/q01": torch.tensor([0.0, np.nan, 0.0, 0.0], dtype=torch.float64)}
    with pytest.raises(ValueError, match="key 'n/q01' contains NaN"):
        NormalizationStats.from_tensors(bad_value, "n/", source="ckpt")
    bad_mode = {**tensors, "n/mode": torch.tensor([7])}
    with pytest.raises(ValueError, match="unknown mode 7"):
        NormalizationStats.from_tensors(bad_mode, "n/", source="ckpt")


def test_unexpected_key_in_a_stats_file_raises(tmp_path: Path) -> None:
    tensors = {**fit(_data()).to_tensors(), "extra": torch.zeros(1)}
    path = tmp_path / "extra.safetensors"
    safetensors.torch.save_file(tensors, str(path))
    with pytest.raises(ValueError, match=r"unexpected key\(s\) \['extra'\]"):
        NormalizationStats.load(path)
