"""Observation synchroniser: frame-set choice under the skew bound, joint interpolation, staleness,
out-of-order and duplicate stamps, joint-name mapping, no repeats, calibration, threads, stats."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from wallwm_core.camera_geometry import CameraGeometry
from wallwm_core.config_loading import ConfigError
from wallwm_core.policy import Observation
from wallwm_ros.observation_sync import (
    MS,
    NotReady,
    NotReadyCode,
    ObservationSynchroniser,
    SyncConfig,
)

CAMERAS = ("left", "right", "wrist")
JOINTS = ("j1", "j2", "gripper")
IMAGE_HW = (4, 6)
T0 = 10_000 * MS  # streams start at 10 s


def geometry(image_hw=IMAGE_HW) -> CameraGeometry:
    k = np.array([[5.0, 0.0, 2.5], [0.0, 5.0, 1.5], [0.0, 0.0, 1.0]])
    return CameraGeometry(K=k, image_size=image_hw, world_from_camera=np.eye(4))


def image(value: int = 0, image_hw=IMAGE_HW) -> np.ndarray:
    return np.full((*image_hw, 3), value, np.uint8)


def make_sync(**overrides) -> ObservationSynchroniser:
    config = SyncConfig(cameras=CAMERAS, joint_names=JOINTS, **overrides)
    sync = ObservationSynchroniser(config)
    for camera in config.cameras:
        sync.set_calibration(camera, geometry())
    return sync


def ramp(stamp_ns: int) -> np.ndarray:
    """Joint positions that are exactly linear in time."""
    t = stamp_ns / 1e9
    return np.array([0.5 + 0.25 * t, -1.0 - 0.75 * t, 0.01 * t])


def feed_joints(sync, start_ns: int, end_ns: int, period_ns: int = 2 * MS) -> None:
    for stamp in range(start_ns, end_ns + 1, period_ns):
        assert sync.add_joint_state(stamp, JOINTS, ramp(stamp)) is None


def feed_frames(sync, stamps: dict[str, list[int]]) -> None:
    for camera, camera_stamps in stamps.items():
        for stamp in camera_stamps:
            sync.add_image(camera, stamp, image(stamp // MS % 256))


def expect_not_ready(result, code: NotReadyCode, *fragments: str) -> NotReady:
    assert isinstance(result, NotReady), result
    assert result.code == code, result
    for fragment in fragments:
        assert fragment in result.reason, result.reason
    return result


# -- frame sets and the skew bound -------------------------------------------------------


def test_observation_needs_every_camera_within_the_skew_bound():
    sync = make_sync(max_camera_skew_ns=20 * MS)
    feed_joints(sync, T0, T0 + 200 * MS)
    feed_frames(sync, {"left": [T0 + 100 * MS], "right": [T0 + 110 * MS]})
    feed_frames(sync, {"wrist": [T0 + 121 * MS]})  # 21 ms after left: one too many
    expect_not_ready(sync.try_observation(T0 + 130 * MS), NotReadyCode.CAMERA_SKEW, "'wrist'")
    feed_frames(sync, {"left": [T0 + 101 * MS]})  # now 20 ms: exactly on the bound
    observation = sync.try_observation(T0 + 130 * MS)
    assert isinstance(observation, Observation)
    assert observation.stamp_ns == T0 + 121 * MS  # the newest frame's stamp
    assert set(observation.images) == set(CAMERAS)
    assert sync.stats(T0 + 130 * MS).last_skew_ns == 20 * MS


def test_latest_consistent_set_is_chosen():
    sync = make_sync(max_camera_skew_ns=10 * MS)
    feed_joints(sync, T0, T0 + 120 * MS)
    ms = lambda *values: [T0 + v * MS for v in values]  # noqa: E731
    # At 80 the set {66, 80, 75} skews 14 ms; at 45 {33, 45, 40} 12 ms; at 10 {0, 10, 5} fits.
    feed_frames(sync, {"left": ms(0, 33, 66), "right": ms(10, 45, 80), "wrist": ms(5, 40, 75)})
    observation = sync.try_observation(T0 + 100 * MS)
    assert observation.stamp_ns == T0 + 10 * MS
    assert [int(observation.images[c][0, 0, 0]) for c in CAMERAS] == [
        (T0 // MS + v) % 256 for v in (0, 10, 5)
    ]


@pytest.mark.parametrize("seed", range(20))
def test_frame_set_choice_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    skew = int(rng.integers(1, 30)) * MS
    sync = make_sync(max_camera_skew_ns=skew, max_camera_age_ns=10_000 * MS)
    stamps = {c: sorted(set(T0 + rng.integers(0, 200, 6) * MS)) for c in CAMERAS}
    feed_frames(sync, stamps)
    feed_joints(sync, T0, T0 + 200 * MS, period_ns=1 * MS)
    consistent = [s for s in itertools.product(*stamps.values()) if max(s) - min(s) <= skew]
    result = sync.try_observation(T0 + 250 * MS)
    if not consistent:
        expect_not_ready(result, NotReadyCode.CAMERA_SKEW)
        return
    best = max(max(s) for s in consistent)
    assert result.stamp_ns == best
    chosen = [int(result.images[c][0, 0, 0]) for c in CAMERAS]
    newest_before = [max(s for s in stamps[c] if s <= best) // MS % 256 for c in CAMERAS]
    assert chosen == newest_before


def test_same_frame_set_is_not_emitted_twice():
    sync = make_sync()
    feed_joints(sync, T0, T0 + 200 * MS)
    feed_frames(sync, {c: [T0 + 100 * MS] for c in CAMERAS})
    first = sync.try_observation(T0 + 120 * MS)
    assert first.stamp_ns == T0 + 100 * MS
    expect_not_ready(sync.try_observation(T0 + 121 * MS), NotReadyCode.NO_NEW_FRAMES)
    # An explicit threshold asks again ("newer than X").
    again = sync.try_observation(T0 + 121 * MS, newer_than_ns=T0 + 99 * MS)
    assert again.stamp_ns == first.stamp_ns
    expect_not_ready(
        sync.try_observation(T0 + 121 * MS, newer_than_ns=T0 + 100 * MS),
        NotReadyCode.NO_NEW_FRAMES,
    )
    feed_frames(sync, {"left": [T0 + 115 * MS]})  # one new frame makes a new set
    assert sync.try_observation(T0 + 140 * MS).stamp_ns == T0 + 115 * MS


# -- joint states ------------------------------------------------------------------------


def test_joint_interpolation_is_exact_on_a_linear_ramp():
    sync = make_sync(max_camera_skew_ns=0, max_camera_age_ns=1_000 * MS)
    feed_joints(sync, T0, T0 + 300 * MS, period_ns=2 * MS)
    rng = np.random.default_rng(0)
    frame_stamps = sorted({T0 + int(s) for s in rng.integers(10 * MS, 290 * MS, 25)})
    for stamp in frame_stamps:
        feed_frames(sync, {c: [stamp] for c in CAMERAS})
        observation = sync.try_observation(T0 + 300 * MS)
        assert isinstance(observation, Observation), observation
        assert observation.stamp_ns == stamp
        assert observation.joint_names == JOINTS
        np.testing.assert_allclose(observation.joint_positions, ramp(stamp), rtol=0, atol=1e-12)


def test_joint_names_are_mapped_onto_the_configured_order():
    sync = make_sync()
    names = ("extra", "gripper", "j1", "j2")
    for stamp in (T0, T0 + 10 * MS):
        j1, j2, grip = ramp(stamp)
        assert sync.add_joint_state(stamp, names, [float("nan"), grip, j1, j2]) is None
    feed_frames(sync, {c: [T0 + 10 * MS] for c in CAMERAS})
    observation = sync.try_observation(T0 + 12 * MS)
    np.testing.assert_allclose(observation.joint_positions, ramp(T0 + 10 * MS))


@pytest.mark.parametrize(
    ("names", "positions", "kind", "fragment"),
    [
        (("j1", "j2"), (0.0, 0.0), "missing_joint", "lacks configured joints ['gripper']"),
        (JOINTS, (0.0, float("nan"), 0.0), "non_finite", "['j2']"),
        (JOINTS, (0.0, 0.0, float("inf")), "non_finite", "['gripper']"),
        (JOINTS, (0.0, 0.0), "malformed", "3 names but 2 positions"),
        (("j1", "j2", "gripper", "j1"), (0.0,) * 4, "malformed", "repeats names ['j1']"),
    ],
)
def test_bad_joint_states_are_rejected_with_a_reason(names, positions, kind, fragment):
    sync = make_sync()
    reason = sync.add_joint_state(T0, names, positions)
    assert reason is not None and fragment in reason
    stats = sync.stats(T0)
    assert stats.joints.dropped == {kind: 1} and stats.joints.stored == 0
    feed_frames(sync, {c: [T0] for c in CAMERAS})
    expect_not_ready(sync.try_observation(T0), NotReadyCode.NO_JOINT_STATES, fragment)


def test_joint_history_bounds_are_never_extrapolated():
    sync = make_sync(max_joint_hold_ns=5 * MS, max_joint_gap_ns=30 * MS, max_camera_skew_ns=0)
    feed_joints(sync, T0 + 50 * MS, T0 + 100 * MS, period_ns=10 * MS)
    feed_joints(sync, T0 + 140 * MS, T0 + 150 * MS, period_ns=10 * MS)  # 40 ms gap before this
    now = T0 + 160 * MS

    def observe_at(stamp: int):
        feed_frames(sync, {c: [stamp] for c in CAMERAS})
        return sync.try_observation(now)

    expect_not_ready(observe_at(T0 + 40 * MS), NotReadyCode.BEFORE_JOINT_HISTORY)
    expect_not_ready(observe_at(T0 + 120 * MS), NotReadyCode.JOINT_GAP, "0.040 s apart")
    held = observe_at(T0 + 155 * MS)  # 5 ms after the newest joint state: held
    np.testing.assert_allclose(held.joint_positions, ramp(T0 + 150 * MS))
    expect_not_ready(observe_at(T0 + 156 * MS), NotReadyCode.JOINT_LAG, "0.006 s before")


# -- staleness ---------------------------------------------------------------------------


def test_stale_camera_is_named_with_its_age():
    sync = make_sync(max_camera_age_ns=100 * MS, max_joint_age_ns=10_000 * MS)
    feed_joints(sync, T0, T0 + 500 * MS, period_ns=10 * MS)
    feed_frames(sync, {"left": [T0 + 490 * MS], "right": [T0 + 490 * MS], "wrist": [T0 + 350 * MS]})
    result = expect_not_ready(
        sync.try_observation(T0 + 500 * MS),
        NotReadyCode.STALE_CAMERA,
        "camera 'wrist' stale: newest is 0.150 s old (limit 0.100 s)",
    )
    assert "'left'" not in result.reason


def test_stale_joint_states_are_detected():
    sync = make_sync(max_joint_age_ns=50 * MS)
    feed_joints(sync, T0, T0 + 100 * MS)
    feed_frames(sync, {c: [T0 + 100 * MS] for c in CAMERAS})
    assert isinstance(sync.try_observation(T0 + 150 * MS), Observation)
    feed_frames(sync, {c: [T0 + 180 * MS] for c in CAMERAS})
    expect_not_ready(
        sync.try_observation(T0 + 200 * MS),
        NotReadyCode.STALE_JOINTS,
        "joint states stale",
        "0.100 s old",
    )


def test_missing_streams_and_clock_mismatch_are_reported():
    sync = make_sync()
    result = expect_not_ready(sync.try_observation(T0), NotReadyCode.NO_FRAMES)
    assert all(f"camera {c!r}: nothing received yet" in result.reason for c in CAMERAS)
    assert "joint states: nothing received yet" in result.reason
    feed_joints(sync, T0 + 5_000 * MS, T0 + 5_000 * MS)
    feed_frames(sync, {c: [T0] for c in CAMERAS})
    expect_not_ready(sync.try_observation(T0), NotReadyCode.STALE_JOINTS, "ahead of now")


def test_rejected_frames_show_in_the_not_ready_reason():
    sync = make_sync()
    feed_joints(sync, T0, T0 + 10 * MS)
    feed_frames(sync, {"left": [T0], "right": [T0]})
    sync.note_rejected_image("wrist", "unsupported encoding 'yuv422'")
    expect_not_ready(
        sync.try_observation(T0), NotReadyCode.NO_FRAMES, "'wrist'", "unsupported encoding 'yuv422'"
    )
    assert sync.stats(T0).cameras["wrist"].dropped == {"undecodable": 1}


def test_inconsistent_fresh_frames_with_an_old_consistent_set_are_a_skew_fault():
    sync = make_sync(max_camera_age_ns=100 * MS, max_camera_skew_ns=5 * MS)
    feed_joints(sync, T0, T0 + 300 * MS, period_ns=10 * MS)
    feed_frames(sync, {c: [T0 + 100 * MS] for c in CAMERAS})
    feed_frames(sync, {"left": [T0 + 290 * MS], "right": [T0 + 270 * MS], "wrist": [T0 + 250 * MS]})
    expect_not_ready(sync.try_observation(T0 + 300 * MS), NotReadyCode.CAMERA_SKEW, "for 0.200 s")


# -- out of order, duplicates, buffers --------------------------------------------------


def test_out_of_order_frames_are_inserted_in_stamp_order():
    sync = make_sync(frame_buffer_size=3, max_camera_skew_ns=0)
    feed_joints(sync, T0, T0 + 100 * MS)
    for stamp in (T0 + 30 * MS, T0 + 10 * MS, T0 + 20 * MS):  # two arrive late
        assert sync.add_image("left", stamp, image(stamp // MS % 256)) is None
    reason = sync.add_image("left", T0 + 5 * MS, image())  # older than the full buffer
    assert "older than the whole buffer" in reason
    stats = sync.stats(T0 + 40 * MS).cameras["left"]
    assert (stats.received, stats.stored, stats.out_of_order) == (4, 3, 2)
    assert stats.dropped == {"too_old": 1}
    # The late frame at 20 ms still pairs with the other cameras' frames at 20 ms.
    feed_frames(sync, {"right": [T0 + 20 * MS], "wrist": [T0 + 20 * MS]})
    observation = sync.try_observation(T0 + 40 * MS)
    assert observation.stamp_ns == T0 + 20 * MS
    assert observation.images["left"][0, 0, 0] == (T0 + 20 * MS) // MS % 256


def test_duplicate_stamps_keep_the_first_message():
    sync = make_sync()
    first, second = image(1), image(2)
    assert sync.add_image("left", T0, first) is None
    assert "duplicate" in sync.add_image("left", T0, second)
    feed_frames(sync, {"right": [T0], "wrist": [T0]})
    assert sync.add_joint_state(T0, JOINTS, ramp(T0)) is None
    assert "duplicate" in sync.add_joint_state(T0, JOINTS, ramp(T0) + 1.0)
    observation = sync.try_observation(T0 + MS)
    assert observation.images["left"] is first
    np.testing.assert_allclose(observation.joint_positions, ramp(T0))
    stats = sync.stats(T0 + MS)
    assert stats.cameras["left"].dropped == {"duplicate": 1}
    assert stats.joints.dropped == {"duplicate": 1}
    assert stats.cameras["left"].last_rejection is None  # a duplicate is not a fault


def test_joint_buffer_is_bounded():
    sync = make_sync(joint_buffer_size=10)
    feed_joints(sync, T0, T0 + 100 * MS, period_ns=MS)
    feed_frames(sync, {c: [T0 + 50 * MS] for c in CAMERAS})
    expect_not_ready(sync.try_observation(T0 + 100 * MS), NotReadyCode.BEFORE_JOINT_HISTORY)
    assert sync.stats(T0).joints.stored == 101


def test_bad_images_and_stamps_are_dropped_and_unknown_cameras_raise():
    sync = make_sync()
    assert "[H, W, C]" in sync.add_image("left", T0, np.zeros((4, 6), np.uint8))
    assert "[H, W, C]" in sync.add_image("left", T0, np.zeros((0, 6, 3), np.uint8))
    assert "negative stamp" in sync.add_image("left", -1, image())
    assert "negative stamp" in sync.add_joint_state(-1, JOINTS, (0.0, 0.0, 0.0))
    assert sync.stats(T0).cameras["left"].dropped == {"bad_image": 2, "bad_stamp": 1}
    with pytest.raises(KeyError, match="unknown camera 'top'"):
        sync.add_image("top", T0, image())


def test_zero_and_future_stamps_never_enter_a_buffer():
    """A frame stamped +100 s (or a burst at +1000 s) would stay the newest of its sorted buffer
    and block every real frame; with the receive time they are rejected and counted."""
    sync = make_sync()
    now = T0 + 100 * MS
    assert "zero stamp" in sync.add_image("left", 0, image(), now)
    assert "zero stamp" in sync.add_joint_state(0, JOINTS, ramp(T0), now)
    assert "ahead of the receive time" in sync.add_image("left", now + 100 * 10**9, image(), now)
    for _ in range(20):
        assert "ahead" in sync.add_image("right", now + 1000 * 10**9, image(), now)
    assert "ahead" in sync.add_joint_state(now + 100 * 10**9, JOINTS, ramp(T0), now)
    within = now + sync.config.max_future_stamp_ns  # inside the tolerance: accepted
    assert sync.add_joint_state(within, JOINTS, ramp(within), now) is None
    stats = sync.stats(now)
    assert stats.cameras["left"].dropped == {"bad_stamp": 1, "future_stamp": 1}
    assert stats.cameras["right"].dropped == {"future_stamp": 20}
    assert stats.cameras["right"].stored == 0
    assert stats.joints.dropped == {"bad_stamp": 1, "future_stamp": 1}

    # the real streams are not blocked: an observation comes from them
    sync = make_sync()
    sync.add_image("left", now + 100 * 10**9, image(), now)
    feed_joints(sync, T0, now)
    for camera in CAMERAS:
        assert sync.add_image(camera, now - 10 * MS, image(), now) is None
    observation = sync.try_observation(now)
    assert isinstance(observation, Observation), observation
    assert observation.stamp_ns == now - 10 * MS


# -- calibration ---------------------------------------------------------------------------


def test_calibration_is_carried_and_checked():
    sync = make_sync()
    sync.set_calibration("wrist", None)
    feed_joints(sync, T0, T0 + 10 * MS)
    feed_frames(sync, {c: [T0 + 10 * MS] for c in CAMERAS})
    expect_not_ready(sync.try_observation(T0 + 10 * MS), NotReadyCode.NO_CALIBRATION, "['wrist']")
    sync.set_calibration("wrist", geometry((8, 6)))
    expect_not_ready(
        sync.try_observation(T0 + 10 * MS),
        NotReadyCode.CALIBRATION_MISMATCH,
        "camera 'wrist': image 4x6 but calibration 8x6",
    )
    wrist = geometry()
    sync.set_calibration("wrist", wrist)
    observation = sync.try_observation(T0 + 10 * MS)
    assert observation.cameras["wrist"] is wrist and set(observation.cameras) == set(CAMERAS)


def test_calibration_can_be_optional():
    sync = ObservationSynchroniser(
        SyncConfig(cameras=CAMERAS, joint_names=JOINTS, require_calibration=False)
    )
    feed_joints(sync, T0, T0 + 10 * MS)
    feed_frames(sync, {c: [T0 + 10 * MS] for c in CAMERAS})
    observation = sync.try_observation(T0 + 10 * MS)
    assert observation.cameras == {}


# -- threads, stats, config, reset ----------------------------------------------------------


def test_concurrent_producers_and_consumer():
    sync = make_sync(frame_buffer_size=4, joint_buffer_size=50)
    frames, period = 200, 33 * MS
    stamps: list[int] = []
    errors: list[BaseException] = []

    def camera_thread(camera: str) -> None:
        for i in range(frames):
            sync.add_image(camera, T0 + i * period, image(i % 256))

    def joint_thread() -> None:
        for i in range(frames * 4):
            stamp = T0 + i * period // 4
            sync.add_joint_state(stamp, JOINTS, ramp(stamp))

    def consumer() -> None:
        try:
            for i in range(frames * 2):
                result = sync.try_observation(T0 + (i // 2) * period + 20 * MS)
                if isinstance(result, Observation):
                    stamps.append(result.stamp_ns)
                    np.testing.assert_allclose(result.joint_positions, ramp(result.stamp_ns))
        except BaseException as error:  # re-raised in the test thread below
            errors.append(error)

    threads = [threading.Thread(target=camera_thread, args=(c,)) for c in CAMERAS]
    threads += [threading.Thread(target=joint_thread), threading.Thread(target=consumer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    end = T0 + (frames - 1) * period
    final = sync.try_observation(end, newer_than_ns=end - MS)
    assert isinstance(final, Observation) and final.stamp_ns == end
    stats = sync.stats(end)
    assert all(stats.cameras[c].received == frames for c in CAMERAS)
    assert stats.joints.received == frames * 4
    assert stats.observations == len(stamps) + 1
    assert stamps == sorted(set(stamps))  # strictly increasing: never the same one twice


def test_stats_count_not_ready_reasons_and_ages():
    sync = make_sync()
    sync.try_observation(T0)
    sync.try_observation(T0)
    feed_joints(sync, T0, T0 + 10 * MS)
    feed_frames(sync, {c: [T0 + 10 * MS] for c in CAMERAS})
    sync.try_observation(T0 + 30 * MS)
    stats = sync.stats(T0 + 40 * MS)
    assert stats.not_ready == {"no_frames": 2}
    assert stats.observations == 1 and stats.last_observation_stamp_ns == T0 + 10 * MS
    assert stats.cameras["left"].age_ns == 30 * MS
    assert stats.joints.age_ns == 30 * MS and stats.joints.received == 6
    assert stats.last_not_ready.code == NotReadyCode.NO_FRAMES


def test_reset_forgets_buffers_after_a_clock_jump():
    sync = make_sync()
    feed_joints(sync, T0, T0 + 10 * MS)
    feed_frames(sync, {c: [T0 + 10 * MS] for c in CAMERAS})
    assert isinstance(sync.try_observation(T0 + 10 * MS), Observation)
    sync.reset()  # simulation restarted at t = 0
    feed_joints(sync, 2 * MS, 10 * MS)  # (a zero stamp is rejected)
    feed_frames(sync, {c: [10 * MS] for c in CAMERAS})
    assert sync.try_observation(10 * MS).stamp_ns == 10 * MS


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (dict(cameras=()), "'cameras' must not be empty"),
        (dict(cameras=("a", "a")), "repeats ['a']"),
        (dict(joint_names=()), "'joint_names' must not be empty"),
        (dict(max_camera_skew_ns=-1), "'max_camera_skew_ns' must be >= 0"),
        (dict(max_camera_age_ns=0), "'max_camera_age_ns' must be > 0"),
        (dict(frame_buffer_size=1), "'frame_buffer_size' must be >= 2"),
    ],
)
def test_invalid_config_is_rejected(overrides, fragment):
    fields = dict(cameras=CAMERAS, joint_names=JOINTS) | overrides
    with pytest.raises(ConfigError) as caught:
        SyncConfig(**fields)
    assert fragment in str(caught.value)
