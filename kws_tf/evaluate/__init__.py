"""Evaluation of exported models through the TFLite runtime (``python -m kws_tf.evaluate``); runtime
side: numpy, ai-edge-litert, jiwer, matplotlib, optional pocketsphinx, never TensorFlow.

``results.json`` (``format`` = ``kws_tf.evaluate/1``; fractions in 0..1, times in seconds). Keys are
stable: new ones may be added, existing ones keep their meaning::

    format, created_utc, command, models, data_dir, split, fold (null or "K/N"), lists_dir (null: the data folder's), seed,
    keyword, vocabulary, elapsed_s
    data: {root, clips, vocabulary_clips, keyword_clips, noise_files, failed}
    settings: {minutes, snr_db [lo, hi], tolerance_s, f1_clips, sentences_with_keyword,
               sentences_without_keyword, snrs_db, jobs (processes used), cpu_count}
    precisions: {"float32" | "int8": SYSTEM}
    peer: null | {name, version, note, words, sentences, speed}     (--compare pocketsphinx)

    SYSTEM.model_bytes: {kws, words, [verifier]}   (verifier: only for a package with its own verifier/; all its verifiers together)
    SYSTEM.words: {n, accuracy, macro_accuracy, core_accuracy,
                   per_word: {WORD: {n, correct, accuracy}},
                   confusion: {labels, matrix (rows spoken, columns recognized)},
                   most_confused: [{true, predicted, count}],
                   by_snr_db: {"clean" | "20" | "10" | "5" | "0": {accuracy, macro_accuracy}},
                   predictions: [{index, file, word, predicted, score}]}
    SYSTEM.keyword: {stream_s, keywords, threshold (sidecar), verify_threshold (sidecar; null: no verifier),
                     at_threshold: POINT, det: [POINT] (increasing threshold),
                     recall_at_fa_per_hour: {"0.5" | "1": {recall, threshold, fa_per_hour}},
                     frame: {precision, recall, f1, threshold, frames, clips}}
        POINT: {threshold, recall, miss_rate, false_alarms, fa_per_hour}
    SYSTEM.sentences: {wer, reference_words, hits, substitutions, deletions, insertions,
                       with_keyword, without_keyword, gate_recall, false_gates, false_gate_rate,
                       words_without_keyword, examples: [{keyword, reference, hypothesis}]}
        false_gates: gate openings matching no keyword, counted over all sentences (with and without the
        keyword); false_gate_rate: the share of keyword-free sentences that opened the gate at all (the
        report's "false gates, sentences without keyword" row).
    SYSTEM.speed: {clip_ms, stream_rtf, sentence_rtf}
"""
