"""tf.data pipelines: seeded determinism, keyword labels aligned with inserted keywords, SNR mixing,
augmentation helpers."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from kws_tf.config import FeatureConfig, KwsDataConfig, WordDataConfig  # noqa: E402
from kws_tf.train.augment import NoiseBank, edge_fragment, freq_mask, frequency_warp, mix_at_snr, reverberate, rms, speed_perturb, synthetic_rir, time_shift  # noqa: E402
from kws_tf.train.kws_data import _group_picker, _timeline, group_probs, kws_dataset  # noqa: E402
from kws_tf.train.word_data import mixup, mixup_batches, one_hot_batches, synthetic_weights, word_train_dataset  # noqa: E402

FEATS = FeatureConfig()
RNG = np.random.default_rng(0)
NOISE = NoiseBank([RNG.standard_normal(40000).astype(np.float32)], 16000 * 10)


def burst_clips(n: int, start_s: float, end_s: float, amp: float = 0.5) -> np.ndarray:
    clips = np.zeros((n, 16000), np.int16)
    t = np.arange(int(start_s * 16000), int(end_s * 16000))
    clips[:, t] = (amp * 32767 * np.sin(2 * np.pi * 440 * t / 16000)).astype(np.int16)
    return clips


def test_word_pipeline_is_seeded_and_balanced():
    audio = burst_clips(12, 0.2, 0.6)
    labels = np.array([0] * 10 + [1, 2], np.int32)  # very uneven classes
    synth = np.zeros(12, bool)
    make = lambda seed: word_train_dataset(audio, labels, synth, n_words=3, noise=NOISE, features=FEATS, word=WordDataConfig(), batch_size=64, seed=seed)
    (x1, y1), (x2, y2) = next(iter(make(5))), next(iter(make(5)))
    x3, _ = next(iter(make(6)))
    assert x1.shape == (64, 98, 40)
    np.testing.assert_array_equal(x1.numpy(), x2.numpy())
    np.testing.assert_array_equal(y1.numpy(), y2.numpy())
    assert not np.array_equal(x1.numpy(), x3.numpy())
    counts = np.bincount(np.concatenate([y.numpy() for _, y in make(1).take(8)]), minlength=4)
    assert counts[1] > 0.2 * counts[0] and counts[2] > 0.2 * counts[0]  # drawn per class, not per clip
    assert counts[3] > 0  # _silence_ examples


def test_word_pipeline_class_power_draws_words_by_their_clip_counts():
    """class_power 1: a class with 10 clips is drawn about 10 times as often as one with 1 clip (uniform
    by default, above); seeded like the default pipeline."""
    audio = burst_clips(12, 0.2, 0.6)
    labels = np.array([0] * 10 + [1, 2], np.int32)
    make = lambda: word_train_dataset(audio, labels, np.zeros(12, bool), n_words=3, noise=NOISE, features=FEATS,
                                      word=WordDataConfig(class_power=1.0, silence_fraction=0.0), batch_size=64, seed=1)
    y = np.concatenate([y.numpy() for _, y in make().take(8)])
    counts = np.bincount(y, minlength=4)
    assert counts[3] == 0 and 6 * counts[1] < counts[0] and 6 * counts[2] < counts[0] and counts[1] + counts[2] > 0
    np.testing.assert_array_equal(next(iter(make()))[1].numpy(), y[:64])


def test_word_pipeline_keyword_share_draws_the_keyword_that_often_and_leaves_other_draws_alone():
    """keyword_share 0.5 over 4 words: the keyword is about 0.5 + 0.5 / 4 of the examples (uniform: 1 / 4);
    every example not switched to the keyword keeps the word, audio draws and all, of the pipeline without it."""
    audio = burst_clips(8, 0.2, 0.6)
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3], np.int32)
    make = lambda share: word_train_dataset(audio, labels, np.zeros(8, bool), n_words=4, noise=NOISE, features=FEATS,
                                            word=WordDataConfig(keyword_share=share, silence_fraction=0.0), batch_size=64, seed=3,
                                            keyword_class=2 if share else None)
    y0 = np.concatenate([y.numpy() for _, y in make(0.0).take(8)])
    y1 = np.concatenate([y.numpy() for _, y in make(0.5).take(8)])
    assert abs(np.mean(y0 == 2) - 0.25) < 0.06
    assert abs(np.mean(y1 == 2) - 0.625) < 0.06
    assert (y1 != 2).any() and np.array_equal(y1[y1 != 2], y0[y1 != 2])
    with pytest.raises(ValueError, match="keyword"):
        word_train_dataset(audio, labels, np.zeros(8, bool), n_words=4, noise=NOISE, features=FEATS,
                           word=WordDataConfig(keyword_share=0.5), batch_size=8, seed=3)
    for share in (1.5, 1.0):  # 1.0: every word example the keyword, no other word ever heard
        with pytest.raises(ValueError, match="keyword_share"):
            WordDataConfig(keyword_share=share)


def test_word_pipeline_confusable_words_draw_those_words_that_often_and_leave_other_draws_alone():
    """confusable_prob 0.5 over 4 words with words 1 and 3 confusable: each of them is about 0.5 / 4 + 0.5 / 2 of
    the examples, and every example not switched keeps the word of the pipeline without the option; the keyword
    share still applies on top."""
    audio = burst_clips(8, 0.2, 0.6)
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3], np.int32)
    make = lambda prob, share=0.0: word_train_dataset(
        audio, labels, np.zeros(8, bool), n_words=4, noise=NOISE, features=FEATS, batch_size=64, seed=3,
        word=WordDataConfig(confusable_words=("b", "d") if prob else (), confusable_prob=prob, keyword_share=share, silence_fraction=0.0),
        keyword_class=2, confusable_classes=[1, 3] if prob else None)
    y0 = np.concatenate([y.numpy() for _, y in make(0.0).take(8)])
    y1 = np.concatenate([y.numpy() for _, y in make(0.5).take(8)])
    assert abs(np.mean(y0 == 1) - 0.25) < 0.06 and abs(np.mean(y0 == 3) - 0.25) < 0.06
    assert abs(np.mean(y1 == 1) - 0.375) < 0.07 and abs(np.mean(y1 == 3) - 0.375) < 0.07
    assert (y1 != y0).any() and np.all((y1 == y0) | np.isin(y1, [1, 3]))  # a switched example is a confusable word
    y2 = np.concatenate([y.numpy() for _, y in make(0.5, share=0.5).take(8)])
    assert abs(np.mean(y2 == 2) - 0.5625) < 0.07 and abs(np.mean(y2 == 1) - 0.1875) < 0.06
    with pytest.raises(ValueError, match="confusable words among the words"):
        word_train_dataset(audio, labels, np.zeros(8, bool), n_words=4, noise=NOISE, features=FEATS,
                           word=WordDataConfig(confusable_words=("b",), confusable_prob=0.5), batch_size=8, seed=3)
    with pytest.raises(ValueError, match="confusable_prob needs confusable_words"):
        WordDataConfig(confusable_prob=0.2)


def test_word_pipeline_draws_silence_levels_from_silence_db():
    """All-silence batches: the default range keeps the noise audible in the log-mel (over -9, the level of
    -80 dB white noise), a range at -110..-100 dB leaves every frame near the floor of digital silence (-13.8)."""
    audio = burst_clips(4, 0.2, 0.6)
    make = lambda **kw: word_train_dataset(audio, np.array([0, 0, 1, 1], np.int32), np.zeros(4, bool), n_words=2, noise=NOISE,
                                           features=FEATS, word=WordDataConfig(silence_fraction=1.0, specaugment=False, **kw),
                                           batch_size=32, seed=5)
    (x0, y0), (x1, y1) = next(iter(make())), next(iter(make(silence_db=(-110.0, -100.0))))
    assert (y0.numpy() == 2).all() and (y1.numpy() == 2).all()
    assert x0.numpy().max(axis=(1, 2)).min() > -9.0
    assert x1.numpy().max() < -12.5
    with pytest.raises(ValueError, match="silence_db"):
        WordDataConfig(silence_db=(-20.0, -70.0))


def test_synthetic_taper_lowers_the_weight_only_for_words_with_many_real_clips():
    np.testing.assert_array_equal(synthetic_weights(np.array([8, 200]), 0.5), [0.5, 0.5])  # taper off
    w = synthetic_weights(np.array([0, 8, 25, 50, 200]), 0.5, taper_clips=25)
    np.testing.assert_allclose(w, [0.5, 0.5, 0.5, 0.25, 0.0625])


def test_word_pipeline_draws_synthetic_clips_with_each_words_weight():
    """Real clips are tones, synthetic ones silent: with per-word weights 0 and 1, word 0's examples are all
    real and word 1's all synthetic; a list of equal weights draws exactly as the one number does."""
    audio = np.concatenate([burst_clips(4, 0.2, 0.6), np.zeros((4, 16000), np.int16)])
    labels, synth = np.array([0, 0, 1, 1] * 2, np.int32), np.array([False] * 4 + [True] * 4)
    word = WordDataConfig(noise_prob=0.0, specaugment=False, silence_fraction=0.0)
    make = lambda w: word_train_dataset(audio, labels, synth, n_words=2, noise=NOISE, features=FEATS, word=word, batch_size=32, seed=4,
                                        synthetic_weight=w)
    x, y = next(iter(make(np.array([0.0, 1.0], np.float32))))
    loud = x.numpy().max(axis=(1, 2)) > -5.0  # log-mel of a tone against all-zero audio
    y = y.numpy()
    assert (y == 0).any() and (y == 1).any()
    assert loud[y == 0].all() and not loud[y == 1].any()
    (a, ya), (b, yb) = next(iter(make(0.5))), next(iter(make(np.array([0.5, 0.5], np.float32))))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(ya.numpy(), yb.numpy())


def test_mixup_blends_features_and_labels_with_one_weight():
    feats = tf.constant(RNG.standard_normal((6, 5, 4)), tf.float32)
    labels = tf.constant([0, 1, 2, 0, 1, 2], tf.int32)
    x, y = mixup(feats, labels, 3, 0.4, tf.constant([1, 2], tf.int64))
    x, y, f = x.numpy(), y.numpy(), feats.numpy()
    lam = y[np.arange(6), labels.numpy()]  # neighbours differ in label, so this is the own weight
    assert np.all((lam >= 0) & (lam <= 1)) and len(set(np.round(lam, 6))) > 1
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(x, lam[:, None, None] * f + (1 - lam[:, None, None]) * np.roll(f, 1, axis=0), atol=1e-5)


def test_word_pipeline_with_mixup_yields_soft_labels_reproducibly():
    audio = burst_clips(6, 0.2, 0.6)
    labels = np.array([0, 0, 1, 1, 2, 2], np.int32)
    make = lambda: mixup_batches(word_train_dataset(audio, labels, np.zeros(6, bool), n_words=3, noise=NOISE, features=FEATS,
                                                    word=WordDataConfig(), batch_size=16, seed=4), n_classes=4, alpha=0.2, seed=4)
    (x1, y1), (x2, y2) = next(iter(make())), next(iter(make()))
    assert x1.shape == (16, 98, 40) and y1.shape == (16, 4) and y1.dtype == tf.float32
    np.testing.assert_allclose(y1.numpy().sum(1), 1.0, atol=1e-6)
    assert np.any((y1.numpy() > 0.01) & (y1.numpy() < 0.99))  # some labels are blends
    np.testing.assert_array_equal(x1.numpy(), x2.numpy())
    np.testing.assert_array_equal(y1.numpy(), y2.numpy())


def test_label_smoothing_trains_on_one_hot_rows_and_softens_the_target():
    from kws_tf.train.presets import PresetError, load_preset
    from kws_tf.train.train_words import word_loss

    audio = burst_clips(6, 0.2, 0.6)
    labels = np.array([0, 0, 1, 1, 2, 2], np.int32)
    plain = word_train_dataset(audio, labels, np.zeros(6, bool), n_words=3, noise=NOISE, features=FEATS, word=WordDataConfig(), batch_size=8, seed=5)
    (x0, y0), (x1, y1) = next(iter(plain)), next(iter(one_hot_batches(plain, n_classes=4)))
    np.testing.assert_array_equal(x1.numpy(), x0.numpy())
    np.testing.assert_array_equal(y1.numpy(), np.eye(4, dtype=np.float32)[y0.numpy()])
    target = np.array([[1.0, 0.0, 0.0, 0.0]], np.float32)
    smoothed = np.array([[0.925, 0.025, 0.025, 0.025]], np.float32)  # 1 - 0.1 + 0.1 / 4, and 0.1 / 4
    sure = np.array([[0.997, 0.001, 0.001, 0.001]], np.float32)
    loss = lambda e, pred: float(word_loss(e)(target, pred))
    assert loss(0.1, smoothed) < loss(0.1, sure)  # smoothed: the smoothed row is the best answer
    assert loss(0.0, sure) < loss(0.0, smoothed)  # plain: the surer the better
    assert load_preset("default", ["words.label_smoothing=0.1"]).words.label_smoothing == pytest.approx(0.1)
    with pytest.raises(PresetError, match="label_smoothing"):
        load_preset("default", ["words.label_smoothing=1"])


def test_kws_pipeline_is_seeded():
    kw, other = burst_clips(4, 0.2, 0.5), burst_clips(4, 0.3, 0.4, 0.2)
    ends = np.full(4, 0.5, np.float32)
    make = lambda: kws_dataset(kw, ends, other, noise=NOISE, features=FEATS, kws=KwsDataConfig(clip_s=4.0), batch_size=4, seed=3)
    (x1, y1), (x2, y2) = next(iter(make())), next(iter(make()))
    np.testing.assert_array_equal(x1.numpy(), x2.numpy())
    np.testing.assert_array_equal(y1.numpy(), y2.numpy())
    assert x1.shape == (4, 398, 40) and y1.shape == (4, KwsDataConfig(clip_s=4.0).output_frames(FEATS), 1)


def test_keyword_labels_follow_each_inserted_keyword():
    """Keyword = a loud burst ending at 0.75 s of its clip (moved by the speed perturbation);
    other words are silent. The labels must rise within one output frame of where the burst ends
    in the features, and last label_s."""
    kcfg = KwsDataConfig(clip_s=10.0, noise_prob=0.0, speed=(0.8, 1.2))
    kw = burst_clips(3, 0.35, 0.75)
    ds = kws_dataset(kw, np.full(3, 0.75, np.float32), np.zeros((2, 16000), np.int16), noise=NOISE, features=FEATS, kws=kcfg, batch_size=16, seed=11)
    x, y = next(iter(ds))
    hop = FEATS.hop_ms / 1000
    frame_times = np.array([kcfg.output_frame_time_s(t, FEATS) for t in range(y.shape[1])])
    checked = 0
    for feats, labels in zip(x.numpy(), y.numpy()[..., 0]):
        loud = feats.max(axis=1) > -2.0
        # Ends of loud runs: the audio end of the last loud feature frame.
        ends = [(i * FEATS.hop_samples + FEATS.window_samples) / 16000 for i in range(len(loud)) if loud[i] and (i + 1 == len(loud) or not loud[i + 1])]
        rises = [frame_times[i] for i in range(len(labels)) if labels[i] and (i == 0 or not labels[i - 1])]
        assert len(rises) == len(ends)
        for end, rise in zip(ends, rises):
            # The last loud frame's window may overhang the burst by up to one window (25 ms);
            # the label rises at the first output frame (40 ms apart) after the true end.
            assert -FEATS.window_ms / 1000 <= rise - end <= kcfg.output_hop_s(FEATS) + hop
        assert abs(labels.sum() - len(ends) * kcfg.label_s / kcfg.output_hop_s(FEATS)) <= len(ends)
        checked += len(ends)
    assert checked >= 5


def test_group_probs_weigh_confusable_and_synthetic_clips():
    # groups: real, synthetic, confusable real, confusable synthetic
    np.testing.assert_allclose(group_probs([100, 300, 10, 20], 0.3, 0.25), [0.525, 0.175, 0.225, 0.075])
    np.testing.assert_allclose(group_probs([100, 300, 10, 20], 0.3, None), [0.175, 0.525, 0.1, 0.2])  # pooled by count
    np.testing.assert_allclose(group_probs([100, 300, 0, 0], 0.3, 0.25), [0.75, 0.25, 0, 0])  # no confusable clips
    np.testing.assert_allclose(group_probs([0, 300, 0, 20], 0.3, 0.25), [0, 0.7, 0, 0.3])  # no real clips
    np.testing.assert_allclose(group_probs([0, 0, 4, 0], 0.3, 0.25), [0, 0, 1, 0])  # only confusable clips


def test_group_picker_draws_groups_by_probability_and_clips_uniformly():
    groups = np.array([0] * 10 + [1] * 30 + [2] * 5 + [3] * 5)
    probs = group_probs(np.bincount(groups, minlength=4), 0.3, 0.25)
    idx = _group_picker(groups, probs)(tf.constant([1, 2], tf.int64), (20000,)).numpy()
    np.testing.assert_allclose(np.bincount(groups[idx], minlength=4) / len(idx), probs, atol=0.015)
    per_clip = np.bincount(idx[groups[idx] == 0], minlength=10)[:10]
    assert per_clip.min() > 0.8 * per_clip.mean()


def test_kws_clips_draw_confusable_words_at_their_share():
    """Keyword clips silent, plain other words a low tone, confusable ones a high tone: with
    confusable_prob 1 every word heard is the high tone, with 0 the low one."""
    t = np.arange(int(0.2 * 16000), int(0.6 * 16000))
    other = np.zeros((4, 16000), np.int16)
    other[:2, t] = (16000 * np.sin(2 * np.pi * 300 * t / 16000)).astype(np.int16)
    other[2:, t] = (16000 * np.sin(2 * np.pi * 3000 * t / 16000)).astype(np.int16)
    confusable = np.array([False, False, True, True])

    low_bin, high_bin = 4, 26  # the mel bins of the two tones

    def high_over_low(prob: float) -> np.ndarray:
        kcfg = KwsDataConfig(clip_s=4.0, noise_prob=0.0, confusable_prob=prob)
        ds = kws_dataset(np.zeros((2, 16000), np.int16), np.full(2, 0.5, np.float32), other, noise=NOISE, features=FEATS, kws=kcfg,
                         batch_size=8, seed=4, other_confusable=confusable, other_synthetic=np.zeros(4, bool))
        x = next(iter(ds))[0].numpy()
        return x[:, :, high_bin].max(axis=1) - x[:, :, low_bin].max(axis=1)  # (B,) > 0 where the high tone is louder

    high, low = high_over_low(1.0), high_over_low(0.0)
    assert (high > -1).all() and (high > 3).sum() >= 4  # clips without any word are about 0
    assert (low < 1).all() and (low < -3).sum() >= 4


def test_timeline_lays_words_at_their_offsets():
    words = (np.arange(1, 4)[:, None] * np.ones((3, 5))).astype(np.float32)  # word j is all j+1
    offsets = np.array([2, 9, 16], np.int32)  # the last word runs past the 18-sample clip
    line = _timeline(tf.constant(words), tf.constant(offsets), 18).numpy()
    expected = np.zeros(18, np.float32)
    for w, o in zip(words, offsets):
        expected[o : o + 5] += w[: 18 - o]
    np.testing.assert_array_equal(line, expected)


def test_freq_mask_masks_whole_bands_with_the_mean():
    feats = tf.constant(RNG.standard_normal((16, 50, 40)).astype(np.float32))
    masked = freq_mask(feats, tf.constant([1, 2], tf.int64), 2, 6).numpy()
    np.testing.assert_array_equal(masked, freq_mask(feats, tf.constant([1, 2], tf.int64), 2, 6).numpy())  # seeded
    changed = (masked != feats.numpy()).any(axis=1)  # (B, n_mels): bins touched per example
    assert changed.any() and (changed.sum(axis=1) <= 12).all()
    for x, m, bins in zip(feats.numpy(), masked, changed):
        np.testing.assert_allclose(m[:, bins], x.mean(), rtol=1e-5)  # whole band, every frame, the mean
        np.testing.assert_array_equal(m[:, ~bins], x[:, ~bins])


def test_kws_freq_masks_apply_to_training_clips_only():
    kw, other = burst_clips(4, 0.2, 0.5), burst_clips(4, 0.3, 0.4, 0.2)
    ends = np.full(4, 0.5, np.float32)
    make = lambda masks, repeat: kws_dataset(kw, ends, other, noise=NOISE, features=FEATS, kws=KwsDataConfig(clip_s=4.0, freq_masks=masks),
                                             batch_size=8, seed=3, repeat=repeat, n_examples=8)
    plain, masked = next(iter(make(0, True)))[0].numpy(), next(iter(make(2, True)))[0].numpy()
    columns = (plain != masked).any(axis=1)  # (B, n_mels)
    assert columns.any()
    for m, cols in zip(masked, columns):
        assert np.ptp(m[:, cols], axis=0).max(initial=0.0) == 0.0  # masked bins are constant in time
    np.testing.assert_array_equal(next(iter(make(0, False)))[0].numpy(), next(iter(make(2, False)))[0].numpy())


def test_frequency_warp_moves_a_peak_by_its_factor_and_keeps_identity():
    power = np.full((3, 5, 257), 1e-6, np.float32)
    power[:, :, 80] = 1.0  # one spectral peak at bin 80 in every frame
    warped = frequency_warp(tf.constant(power), tf.constant([1.0, 1.1, 0.9])).numpy()
    np.testing.assert_allclose(warped[0], power[0], rtol=1e-6)
    assert np.argmax(warped[1, 0]) == 88  # 80 * 1.1: formants move up
    assert np.argmax(warped[2, 0]) == 72  # 80 * 0.9: and down
    assert warped[2, 0, -1] == power[2, 0, -1]  # the top bins read the Nyquist bin, never out of range


def test_kws_freq_warp_applies_to_training_clips_only():
    kw, other = burst_clips(4, 0.2, 0.5), burst_clips(4, 0.3, 0.4, 0.2)
    ends = np.full(4, 0.5, np.float32)
    make = lambda warp, repeat: kws_dataset(kw, ends, other, noise=NOISE, features=FEATS, kws=KwsDataConfig(clip_s=4.0, freq_warp=warp),
                                            batch_size=8, seed=3, repeat=repeat, n_examples=8)
    plain, warped = next(iter(make(0.0, True))), next(iter(make(0.1, True)))
    np.testing.assert_array_equal(plain[1].numpy(), warped[1].numpy())  # same clips, same labels
    assert np.abs(plain[0].numpy() - warped[0].numpy()).max() > 0.1
    np.testing.assert_array_equal(next(iter(make(0.0, False)))[0].numpy(), next(iter(make(0.1, False)))[0].numpy())
    with pytest.raises(ValueError, match="freq_warp"):
        KwsDataConfig(freq_warp=0.6)


@pytest.mark.parametrize("snr_db", [0.0, 7.5, 20.0])
def test_mix_at_snr_sets_the_rms_ratio(snr_db):
    speech = tf.constant(burst_clips(1, 0.1, 0.9)[0] / 32768.0, tf.float32)
    noise = NOISE.crop(tf.constant([1, 2], tf.int64), 16000)
    assert abs(float(rms(noise)) - 1.0) < 1e-3
    mixed = mix_at_snr(speech, noise, tf.constant(snr_db))
    measured = 20 * np.log10(float(rms(speech)) / float(rms(mixed - speech)))
    assert abs(measured - snr_db) < 0.01


def test_time_shift_and_speed_keep_length():
    x = tf.constant(burst_clips(1, 0.4, 0.6)[0] / 32768.0, tf.float32)
    shifted = time_shift(x, tf.constant([0, 1], tf.int64), 1600)
    assert shifted.shape == x.shape and abs(float(tf.reduce_sum(tf.abs(shifted))) - float(tf.reduce_sum(tf.abs(x)))) < 1.0
    fast = speed_perturb(x, tf.constant(1.1))
    assert fast.shape == x.shape
    active = np.flatnonzero(np.abs(fast.numpy()) > 1e-3)
    assert 0.17 < (active[-1] - active[0]) / 16000 < 0.19  # 0.2 s burst played 1.1x faster


def test_synthetic_rir_has_a_direct_path_and_a_decaying_tail_at_the_drr():
    rir = synthetic_rir(tf.constant([3, 4], tf.int64), tf.constant(0.4), tf.constant(6.0), 8000, 16000).numpy()
    assert rir.shape == (8000,) and rir[0] == 1.0
    assert abs(10 * np.log10(1.0 / np.sum(rir[1:] ** 2)) - 6.0) < 1e-3  # direct-to-reverberant ratio
    early, late = np.sum(rir[1:1600] ** 2), np.sum(rir[4800:6400] ** 2)  # 0-0.1 s vs 0.3-0.4 s
    assert 10 * np.log10(early / late) > 30  # about 60 dB per 0.4 s


def test_reverb_smears_a_burst_and_keeps_length_and_level():
    x = tf.constant(burst_clips(1, 0.2, 0.4)[0] / 32768.0, tf.float32)
    identity = tf.concat([[1.0], tf.zeros(4000)], axis=0)
    np.testing.assert_allclose(reverberate(x, identity).numpy(), x.numpy(), atol=1e-5)
    wet = reverberate(x, synthetic_rir(tf.constant([1, 2], tf.int64), tf.constant(0.6), tf.constant(0.0), 8000, 16000)).numpy()
    assert wet.shape == (16000,) and abs(float(rms(wet)) - float(rms(x))) < 1e-4
    assert np.sum(wet[6500:] ** 2) > 0.01 * np.sum(wet**2)  # energy carried past the burst's end at 0.4 s
    assert np.sum(x.numpy()[6500:] ** 2) == 0
    assert np.max(np.abs(wet[:3000])) < 1e-4  # nothing before the burst starts at 0.2 s (causal)


def test_word_pipeline_reverb_is_seeded_and_changes_examples():
    audio, labels, synth = burst_clips(4, 0.2, 0.5), np.array([0, 0, 1, 1], np.int32), np.zeros(4, bool)
    make = lambda prob: word_train_dataset(audio, labels, synth, n_words=2, noise=NOISE, features=FEATS, batch_size=8, seed=2,
                                           word=WordDataConfig(reverb_prob=prob, noise_prob=0.0, specaugment=False, silence_fraction=0.0))
    dry, wet1, wet2 = (next(iter(make(p)))[0].numpy() for p in (0.0, 1.0, 1.0))
    np.testing.assert_array_equal(wet1, wet2)
    assert not np.allclose(dry, wet1, atol=1e-3)


def test_word_pipeline_freq_warp_is_seeded_and_changes_only_features():
    audio, labels, synth = burst_clips(4, 0.2, 0.5), np.array([0, 0, 1, 1], np.int32), np.zeros(4, bool)
    make = lambda warp: word_train_dataset(audio, labels, synth, n_words=2, noise=NOISE, features=FEATS, batch_size=8, seed=2,
                                           word=WordDataConfig(freq_warp=warp, noise_prob=0.0, specaugment=False, silence_fraction=0.0))
    (plain, y0), (warped1, y1), (warped2, _) = (next(iter(make(w))) for w in (0.0, 0.1, 0.1))
    np.testing.assert_array_equal(warped1.numpy(), warped2.numpy())
    np.testing.assert_array_equal(y0.numpy(), y1.numpy())
    assert np.abs(plain.numpy() - warped1.numpy()).max() > 0.1
    with pytest.raises(ValueError, match="freq_warp"):
        WordDataConfig(freq_warp=-0.1)


def test_edge_fragment_puts_a_neighbours_speech_at_one_edge():
    other = tf.constant(np.arange(1, 16001, dtype=np.float32))  # sample k holds k + 1: where each sample came from shows
    start, end, overlap = tf.constant(4800), tf.constant(9600), tf.constant(1600)  # speech 0.3-0.6 s, 0.1 s overlap
    nxt = edge_fragment(other, start, end, overlap, tf.constant(True)).numpy()
    np.testing.assert_array_equal(nxt[-1600:], np.arange(4801, 6401))  # the next word's first 0.1 s ends the window
    assert not nxt[:-1600].any()
    prev = edge_fragment(other, start, end, overlap, tf.constant(False)).numpy()
    np.testing.assert_array_equal(prev[:1600], np.arange(8001, 9601))  # the previous word's last 0.1 s starts it
    assert not prev[1600:].any()


def test_word_pipeline_neighbours_touch_only_the_window_edges():
    """neighbour_prob 1: every example gains a neighbour's edge within neighbour_overlap_s of its start or
    end; the middle of the window, the labels and all other draws stay as without the option."""
    audio, labels, synth = burst_clips(4, 0.35, 0.65), np.array([0, 0, 1, 1], np.int32), np.zeros(4, bool)
    make = lambda prob, **more: word_train_dataset(audio, labels, synth, n_words=2, noise=NOISE, features=FEATS, batch_size=16, seed=3,
                                                   word=WordDataConfig(neighbour_prob=prob, neighbour_overlap_s=(0.1, 0.2), noise_prob=0.0,
                                                                   specaugment=False, silence_fraction=0.0, **more))
    (plain, y0), (with1, y1), (with2, _) = (next(iter(make(p))) for p in (0.0, 1.0, 1.0))
    plain, with1 = plain.numpy(), with1.numpy()
    np.testing.assert_array_equal(with1, with2.numpy())
    np.testing.assert_array_equal(y0.numpy(), y1.numpy())
    np.testing.assert_allclose(with1[:, 25:72], plain[:, 25:72], atol=1e-4)  # 0.25-0.72 s: untouched
    edges = np.abs(with1 - plain)[:, np.r_[0:18, 80:98]].max(axis=(1, 2))
    assert (edges > 1.0).all()  # each example has a neighbour at its start or its end
    start_only = next(iter(make(1.0, neighbour_at_end=0.0)))[0].numpy()
    np.testing.assert_allclose(start_only[:, 25:], plain[:, 25:], atol=1e-4)  # neighbour_at_end 0: the start only
    assert (np.abs(start_only - plain)[:, :18].max(axis=(1, 2)) > 1.0).all()


def test_partial_keywords_are_unlabelled_negatives():
    """With every other-word slot a cut keyword, loud runs outnumber labelled keywords: the partial
    ones ("sto") carry no label."""
    kcfg = KwsDataConfig(clip_s=10.0, noise_prob=0.0, partial_keyword_prob=1.0)
    kw = burst_clips(3, 0.35, 0.75)
    ds = kws_dataset(kw, np.full(3, 0.75, np.float32), np.zeros((2, 16000), np.int16), noise=NOISE, features=FEATS, kws=kcfg,
                     batch_size=8, seed=4, keyword_start_s=np.full(3, 0.35, np.float32))
    x, y = next(iter(ds))
    runs = rises = 0
    for feats, labels in zip(x.numpy(), y.numpy()[..., 0]):
        loud = feats.max(axis=1) > -2.0
        runs += int(np.sum(loud[1:] & ~loud[:-1]) + loud[0])
        rises += int(np.sum(labels[1:] > labels[:-1]) + labels[0])
    assert rises > 0 and runs > rises + 4


def test_learning_rate_schedules():
    from kws_tf.train.fitting import adam
    from kws_tf.train.presets import PresetError, load_preset

    constant = adam(1e-3, "constant", 100)
    assert float(constant.learning_rate) == pytest.approx(1e-3)
    cosine = adam(1e-3, "cosine", 100)

    def rate_at(step: int) -> float:  # the rate follows the optimizer's step count (also after resume)
        cosine.iterations.assign(step)
        return float(cosine.learning_rate)

    assert rate_at(0) == pytest.approx(1e-3)
    assert rate_at(50) == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5), rel=1e-4)
    assert rate_at(100) == pytest.approx(1e-5, rel=1e-3)
    with pytest.raises(ValueError):
        adam(1e-3, "linear", 100)
    with pytest.raises(PresetError, match="lr_schedule"):
        load_preset("default", ["words.lr_schedule=linear"])


@pytest.mark.parametrize("decay_head", [True, False])
def test_weight_decay_shrinks_kernels_only(decay_head):
    """Every kernel shrinks by decay x rate; biases and batch norm stay, and so does the classifier head when it is
    left out (``words.decay_head=false``)."""
    from kws_tf.train.fitting import adam
    from kws_tf.train.models import build_word_model
    from kws_tf.train.presets import PresetError, load_preset

    assert type(adam(1e-3, "cosine", 100)).__name__ == "Adam"  # off by default
    model = build_word_model(input_frames=8, n_mels=8, n_classes=3, widths=(4,))
    head = [] if decay_head else model.get_layer("word_probs").trainable_variables
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    optimizer = adam(0.1, "constant", 10, weight_decay=0.5, not_decayed=head)
    zeros = [np.zeros(v.shape, np.float32) for v in model.trainable_variables]  # no gradient: decay alone moves them
    optimizer.apply_gradients(zip(zeros, model.trainable_variables))
    names = {v.name for v in model.trainable_variables}
    assert {"kernel", "bias", "gamma", "beta"} <= names
    head_paths = {v.path for v in head}
    assert decay_head or any(p.endswith("kernel") for p in head_paths)
    for v in model.trainable_variables:
        kept = v.name in ("bias", "gamma", "beta") or v.path in head_paths
        np.testing.assert_allclose(v.numpy(), before[v.path] * (1.0 if kept else 1.0 - 0.1 * 0.5), rtol=1e-6, err_msg=v.path)
    assert load_preset("default", ["words.weight_decay=0.05"]).words.weight_decay == pytest.approx(0.05)
    with pytest.raises(PresetError, match="weight_decay"):
        load_preset("default", ["kws.weight_decay=-1"])
    assert load_preset("default", []).words.decay_head is True
    assert load_preset("default", ["words.decay_head=false"]).words.decay_head is False
    with pytest.raises(PresetError, match="decay_head"):
        load_preset("default", ["words.decay_head=no"])
