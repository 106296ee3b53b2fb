"""The project's mutation check: named bugs planted one at a time; each must make its tests fail.

Run on demand from the repo root:  .venv/bin/python tests/mutation/run.py [NAME ...]
Each mutant is a small text patch (old -> new, each old text found exactly once) and the tests that must
catch it. The check copies the tracked tree into a temporary folder (with ``shared`` linked beside it, so
real-data tests run), applies one patch, runs only that mutant's tests there (under the suite's loopback
fence), and prints killed / survived / stale with the time. A stale mutant (its old text is gone) means the
code moved: update the mutant. Exit status 1 if any mutant survived or is stale.

Why a hand-written list and not a library: the bugs that matter here cross modules (which input feeds which
slot, which fold's rows tune the offsets), and each run costs a TensorFlow start; a targeted list of ~30
named mutants with their tests runs in minutes and says exactly what each test protects.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    patches: tuple[tuple[str, str], ...]
    tests: tuple[str, ...]


def m(name: str, file: str, tests: str, *patches: tuple[str, str]) -> Mutant:
    return Mutant(name, file, patches, tuple(tests.split()))


CAL, ALIGN, HOSTILE = "tests/test_calibration.py", "tests/test_scoring_alignment.py", "tests/test_hostile_cells.py"
FAST, API = "tests/test_fast_encoders.py", "tests/test_python_api.py"
PRESET, RAY = "tests/test_preset_encoders.py", "tests/test_ray_engine.py"
STORE, FOLDER = "tests/test_object_store.py", "tests/test_output_folder.py"
EDGES, DOMAIN = "tests/test_edges.py", "tests/test_domain.py"
MUTANTS = [
    # the five that passed the suite before (issue 19)
    m("offsets not applied", "mmscore/model/predictor.py", CAL,
      ("z = np.asarray(logits, np.float64) + np.asarray(offsets, np.float64)", "z = np.asarray(logits, np.float64)")),
    m("decoder pixel limit removed", "mmscore/images/decode.py", ALIGN + "::test_the_decoders_own_pixel_limit_refuses_what_pillow_would_decode",
      ("if im.width * im.height > max_pixels:", "if False:")),
    m("mask 1 for failed images", "mmscore/scoring/chunks.py", ALIGN + "::test_prepare_chunk_masks_exactly_the_images_that_decoded",
      ("mask[:, side] = [array is not None for array, _status in results]", "mask[:, side] = 1.0")),
    m("text_1 scored in text_2's place", "mmscore/scoring/chunks.py", ALIGN,
      ("preprocessor.tokens(*as_text)", "preprocessor.tokens(as_text[0], as_text[0])")),
    m("offsets tuned with the fold's own rows", "mmscore/training/cross_fitting.py", CAL,
      ("np.flatnonzero(calibrated), test_rows)", "np.flatnonzero(calibrated), [])")),
    # the reference example's bug classes
    m("image_1 scored twice", "mmscore/model/predictor.py", ALIGN,
      ("images = tf.concat([image_1, image_2], 0)", "images = tf.concat([image_1, image_1], 0)")),
    m("training pairs text_1 with itself", "mmscore/training/embeddings.py", "tests/test_training.py::test_text_2_embedding_comes_from_text_2",
      ("        text_vectors[n:],\n", "        text_vectors[:n],\n")),
    m("pixels not scaled to [0, 1]", "mmscore/images/decode.py", ALIGN + "::test_the_scoring_step_sees_photos_and_texts_as_the_encoders_do",
      ("    return tf.cast(batch, tf.float32) / PIXEL_MAX", "    return tf.cast(batch, tf.float32)")),
    m("transparency becomes black", "mmscore/images/decode.py", "tests/test_decode.py",
      ('background = Image.new("RGBA", im.size, (255, 255, 255, 255))', 'background = Image.new("RGBA", im.size, (0, 0, 0, 255))')),
    m("probabilities land on the wrong rows", "mmscore/scoring/chunks.py", ALIGN + " tests/test_pipeline.py",
      ("probs = chunk.in_input_order(np.concatenate(parts)) if parts else", "probs = np.concatenate(parts) if parts else")),
    m("label order swapped", "mmscore/labels.py", "tests/test_report.py tests/test_pipeline.py",
      ('("Contradictory", "Implies", "NoEntailment")', '("Implies", "Contradictory", "NoEntailment")')),
    # calibration and images as evidence
    m("temperature not applied", "mmscore/model/predictor.py", CAL,
      ("return softmax(z / float(temperature)).astype(np.float32)", "return softmax(z).astype(np.float32)")),
    m("temperature fitted on the fold's own rows", "mmscore/training/cross_fitting.py", CAL,
      ("yield test_rows, offsets, fit_temperature(oof[others] + offsets, y[others])", "yield test_rows, offsets, fit_temperature(oof + offsets, y)")),
    m("ECE signed, not absolute", "mmscore/metrics.py", CAL,
      ("gap = np.abs(self.confidence_sum - self.correct_sum)", "gap = self.confidence_sum - self.correct_sum")),
    m("augmentation overwrites rows' own images", "mmscore/training/unrelated_photos.py", "tests/test_images_as_evidence.py::test_augmentation_attaches_only_given_photos_to_bare_rows_and_keeps_own_images",
      ("bare = rows[emb.image_mask[rows].sum(1) == 0]", "bare = rows")),
    m("text-only model still fed images", "mmscore/model/preprocessor.py", "tests/test_images_as_evidence.py::test_without_photos_and_few_images_the_model_is_text_only",
      ("return image_mask if uses_images else image_mask * 0", "return image_mask")),
    m("review queue most confident first", "mmscore/report.py", "tests/test_report.py",
      ("    order = np.lexsort((keep_rows, keep_conf))\n", "    order = np.lexsort((keep_rows, -keep_conf))\n")),
    # reliability guarantees
    m("resume starts from row 0", "mmscore/scoring/local_engine.py", "tests/test_process_faults.py::test_repeated_sigkill_then_resume_is_exact",
      ("skip=writer.rows_done", "skip=0")),
    m("SSRF: private addresses allowed", "mmscore/images/url_policy.py", "tests/test_fetcher.py tests/test_faults.py",
      ("if not all(self.permits_address(a) for a in addresses):", "if False:")),
    m("redirect hops not re-checked", "mmscore/images/fetcher.py", "tests/test_faults.py",
      ("self.policy.check(url, wait=wait or hop > 0)", "hop or self.policy.check(url, wait=wait)")),
    m("size cap ignored while streaming", "mmscore/images/fetcher.py", "tests/test_faults.py",
      ("if size > s.max_bytes:", "if False:")),
    m("cache entries not verified", "mmscore/images/image_cache.py", "tests/test_fetcher.py::test_corrupt_cache_entry_is_detected_and_refetched",
      ("if len(digest) != 64 or _sha256(data) != digest:", "if len(digest) != 64:")),
    m("CSV records that fail to parse dropped", "mmscore/io/pairs_reader.py", "tests/test_input_faults.py",
      ("            yield [], statuses.MALFORMED_ROW\n", "")),
    m("empty texts not flagged", "mmscore/scoring/chunks.py", "tests/test_pipeline.py tests/test_input_faults.py",
      ("return statuses.TEXT_OK if not empty else statuses.empty_texts(empty)", "return statuses.TEXT_OK")),
    m("unsafe model load", "mmscore/model/predictor.py", "tests/test_training.py::test_a_head_with_python_code_inside_is_refused",
      ("compile=False, safe_mode=True)", "compile=False, safe_mode=False)")),
    m("fetch lets exceptions escape", "mmscore/images/fetcher.py", HOSTILE,
      ("            return self._fetch(ref, wait, self.pool_size if alone else self.per_host)\n        except Exception as exc:", "            return self._fetch(ref, wait, self.pool_size if alone else self.per_host)\n        except ZeroDivisionError as exc:")),
    m("local paths escape the image root", "mmscore/images/fetcher.py", HOSTILE,
      ("if not path.is_relative_to(self.image_root):", "if False:")),
    m("devices and FIFOs opened", "mmscore/images/fetcher.py", HOSTILE,
      ("if not stat.S_ISREG(os.stat(path).st_mode):", "if False:"),
      ("if not stat.S_ISREG(os.fstat(fd).st_mode):", "if False:")),
    m("breaker never opens", "mmscore/images/host_health.py", HOSTILE,
      ("            if not unreachable:\n", "            if True:\n")),
    m("name looked up for every reference", "mmscore/images/url_policy.py", HOSTILE,
      ("            if lookup is None:\n", "            if True:\n")),
    m("embedding cache keeps stale vectors", "mmscore/model/embedding_cache.py", "tests/test_training.py::test_embedding_cache_skips_encoders_and_invalidates_one_entry",
      ("if key not in found and key not in missing:", "if False:")),
    # the faster encoders and the Python API
    m("BatchNorm shift dropped when folding", "mmscore/encoders/mobilenet_v2.py", FAST + "::test_folded_mobilenet_matches_the_unfolded_one_on_real_photos",
      ("set_weights([kernel, beta - mean * scale])", "set_weights([kernel, beta])")),
    m("bfloat16 pooled and normalised", "mmscore/encoders/pooling.py", FAST + "::test_bfloat16_text_encoder_keeps_the_meaning_of_real_tweets",
      ('    sequence = ops.cast(sequence, "float32")', '    pass')),
    m("in-memory scoring loses the index", "mmscore/scorer.py", API + "::test_score_frame_equals_score_file_row_for_row",
      ("        out.index = frame.index\n", "")),
    m("CLI catches only some error kinds", "mmscore/cli.py", API + "::test_every_user_error_is_a_one_line_message_with_exit_code_2",
      ("        except MmscoreError as exc:", "        except ValueError as exc:")),
    # preset encoders, the NumPy macro-F1, folder inputs and the Ray engine
    m("macro-F1 averages over seen classes only", "mmscore/metrics.py", CAL + "::test_macro_f1_equals_scikit_learn",
      ("return float(np.mean(np.divide(2 * hits, denominator, out=np.zeros(k), where=denominator > 0)))",
       "return float(np.mean((2 * hits / denominator)[denominator > 0]))")),
    m("card's encoder weights not checked", "mmscore/model/card.py", PRESET + "::test_weights_other_than_the_cards_are_refused",
      ("        if expected and encoder.weights_sha256 != expected:", "        if False:")),
    m("preset cache ignores the weights", "mmscore/encoders/keras_hub_preset.py", PRESET + "::test_embedding_cache_never_reuses_vectors_of_other_weights",
      ("        return self.weights_sha256[:16]\n\n    def tokenize", "        return type(self.backbone).__name__\n\n    def tokenize")),
    m("BERT pooler ignored", "mmscore/encoders/keras_hub_preset.py", PRESET + "::test_model_on_preset_folders_scores_from_its_card_alone",
      ('return "pooled" if isinstance(backbone.output, dict)', 'return "mean" if isinstance(backbone.output, dict)')),
    m("folder files in listing order", "mmscore/io/pairs_reader.py", RAY + "::test_folder_input_is_one_table_in_sorted_order",
      ("and i.base_name.lower().endswith(SUFFIXES)), key=_path)", "and i.base_name.lower().endswith(SUFFIXES)), key=lambda i: -i.size)")),
    m("shard reads one row group too few", "mmscore/io/pairs_reader.py", RAY + "::test_ray_equals_local_bit_for_bit_on_many_uneven_files",
      ("last = next(g for g, upto in enumerate(bounds) if upto >= hi)", "last = next(g for g, upto in enumerate(bounds) if upto > lo)")),
    m("resume rescores finished shards", "mmscore/scoring/ray_engine.py", RAY + "::test_killed_driver_then_resume_is_exact",
      ("    done = writer.finished_parts() & {s.index for s in shards}", "    done = set()")),
    # outputs: URIs, folders of parts, part sizes
    m("torn object left after a failed upload", "mmscore/io/storage.py", STORE + "::test_s3_parts_resume_and_a_failed_publish_leaves_no_torn_output",
      ("            with suppress(OSError):\n                self.remove()\n", "            pass\n")),
    m("a user's folder cleared", "mmscore/io/scored_writer.py", FOLDER + "::test_output_choice_errors_are_one_line_before_the_model_loads",
      ("    if names and RUN_KEY_FILE not in names:", "    if False:")),
    m("old parts kept by a new run", "mmscore/io/scored_writer.py", FOLDER + "::test_a_new_run_into_the_folder_replaces_every_part_of_the_old_one",
      ("if name in (RUN_KEY_FILE, FACTS_FILE) or any(fnmatch.fnmatchcase(name, p) for p in OURS):", "if name in (RUN_KEY_FILE, FACTS_FILE):")),
    m("last short part never written", "mmscore/scoring/local_engine.py", FOLDER + "::test_part_rows_are_rounded_up_to_whole_chunks_and_change_no_value",
      ("    if part:\n        writer.write(pa.concat_tables(part))\n", "")),
    m("hidden files read as data", "mmscore/io/pairs_reader.py", "tests/test_reader.py::test_a_folder_or_glob_is_one_table_in_name_order",
      ('return not info.base_name.startswith((".", "_"))', "return True")),
    m("report reads the first part only", "mmscore/io/scored_writer.py", FOLDER + "::test_report_and_review_queue_read_the_folder_like_the_file",
      ("parts = [output.child(name) for name in output.names(PARTS)]", "parts = [output.child(name) for name in output.names(PARTS)][:1]")),
    m("CLI output parsed as a path", "mmscore/cli_options.py", STORE + "::test_the_cli_writes_and_reports_s3_uris",
      ('OutputOpt = Annotated[\n    str | None,', 'OutputOpt = Annotated[\n    Path | None,')),
    # edges (issue 27): cuts at exactly their value, counters one short, column types, order, >10 parts, linked folders
    m("low-confidence cut inclusive in the report", "mmscore/report.py", EDGES + "::test_low_confidence_cut_is_strictly_below_the_threshold_in_report_and_review",
      ("report.low_confidence += int((top < low_confidence).sum())", "report.low_confidence += int((top <= low_confidence).sum())")),
    m("review cut inclusive", "mmscore/report.py", EDGES + "::test_low_confidence_cut_is_strictly_below_the_threshold_in_report_and_review",
      ("wanted = confidence < below if below is not None", "wanted = confidence <= below if below is not None")),
    m("breaker opens one failure early", "mmscore/images/host_health.py", EDGES + "::test_breaker_stays_closed_one_failure_short_and_a_success_resets_the_count",
      ("if self._failures.get(host, 0) < self.threshold:", "if self._failures.get(host, 0) < self.threshold - 1:")),
    m("size cap refuses exactly max_bytes over HTTP", "mmscore/images/fetcher.py", EDGES + "::test_size_cap_admits_exactly_max_bytes_over_http_and_from_disk",
      ("if size > s.max_bytes:", "if size >= s.max_bytes:")),
    m("size cap refuses exactly max_bytes on disk", "mmscore/images/fetcher.py", EDGES + "::test_size_cap_admits_exactly_max_bytes_over_http_and_from_disk",
      ("if len(data) > self.settings.max_bytes:", "if len(data) >= self.settings.max_bytes:")),
    m("pixel limit refuses exactly max_pixels", "mmscore/images/decode.py", EDGES + "::test_pixel_limit_admits_exactly_max_pixels",
      ("if im.width * im.height > max_pixels:", "if im.width * im.height >= max_pixels:")),
    m("one redirect hop too few", "mmscore/images/fetcher.py", EDGES + "::test_redirects_admit_exactly_max_redirects",
      ("for hop in range(self.settings.max_redirects + 1):", "for hop in range(self.settings.max_redirects):")),
    m("linked folders not resolved", "mmscore/images/fetcher.py", EDGES + "::test_a_linked_folder_inside_the_image_root_that_points_outside_is_blocked",
      ("path = (self.image_root / ref).resolve(strict=True)", "path = Path(os.path.normpath(self.image_root / ref)); path.stat()")),
    m("order restored for one probability column", "mmscore/scoring/chunks.py", EDGES + "::test_restoring_input_order_moves_every_probability_column_with_its_row",
      ("        restored[self.order] = probs\n", "        restored = probs.copy()\n        restored[self.order, 0] = probs[:, 0]\n")),
    m("probabilities written as float64", "mmscore/contract.py", EDGES + "::test_scored_output_column_types_are_the_contract",
      ("    *(pa.field(name, pa.float32()) for name in PROB_COLUMNS),", "    *(pa.field(name, pa.float64()) for name in PROB_COLUMNS),")),
    m("part names not zero-padded", "mmscore/io/scored_writer.py", EDGES + "::test_a_folder_of_more_than_ten_parts_is_read_in_row_order_by_report_and_review",
      ('return f"part-{index:06d}.parquet"', 'return f"part-{index}.parquet"')),
    # the in-domain score (issue 30)
    m("in-domain cut off by one", "mmscore/model/domain.py", DOMAIN + "::test_the_cut_is_exact_on_counts_of_held_out_pairs",
      ("return (below / len(self.held_out)).astype(np.float32), below >= self.cut_rank", "return (below / len(self.held_out)).astype(np.float32), below > self.cut_rank")),
    m("report warns at exactly a fifth", "mmscore/report.py", DOMAIN + "::test_report_warns_above_a_fifth_out_of_domain_and_review_selects_them",
      ("return self.out_share > OUT_OF_DOMAIN_WARNING_SHARE", "return self.out_share >= OUT_OF_DOMAIN_WARNING_SHARE")),
    m("review ignores --out-of-domain", "mmscore/report.py", DOMAIN + "::test_report_warns_above_a_fifth_out_of_domain_and_review_selects_them",
      ("            wanted &= np.array([flag is False for flag in batch.column(IN_DOMAIN).to_pylist()], bool)\n", "")),
    # extending a model with a user's labels (issue 31), the architecture (issue 28)
    m("new rows never trained on", "mmscore/training/recipe.py", "tests/test_extending.py::test_new_rows_in_the_base_domain_retrain_its_main_head",
      ("np.full(n_new, new_weight, np.int64)", "np.zeros(n_new, np.int64)")),
    m("texts kept in the model", "mmscore/model/training_rows.py", "tests/test_extending.py::test_a_trained_model_keeps_its_rows_as_vectors_not_texts",
      ("            folds=self.folds.astype(np.int16),\n", "            folds=self.folds.astype(np.int16),\n            texts=np.array(['new cases']),\n")),
    m("empty labels read as a label", "mmscore/training/embeddings.py", "tests/test_extending.py::test_the_review_queue_is_a_labelling_sheet_and_empty_labels_are_skipped",
      ('    df = df[~unlabelled]  # a review queue', '    unlabelled[:] = False  # a review queue')),
    m("CLI default drifts from the library", "mmscore/cli.py", "tests/test_architecture.py::test_every_score_and_train_option_is_a_library_parameter_with_the_same_default",
      ("batch_size: BatchSizeOpt = defaults.BATCH_SIZE,", "batch_size: BatchSizeOpt = 64,")),
    # the model recipe (issue 29): seed heads, lexical-v2
    m("built pairs validated", "mmscore/training/cross_fitting.py", "tests/test_training.py::test_rows_after_the_validated_ones_train_only_outside_their_source_fold_and_are_never_scored",
      ("checked = everything < self.rows_validated", "checked = everything >= 0")),
    m("extension calibrated on the new rows too", "mmscore/training/cross_fitting.py", "tests/test_calibration.py::test_offsets_and_temperature_come_only_from_the_calibrated_rows",
      ("np.arange(len(y)) if calibrated is None else np.flatnonzero(calibrated)", "np.arange(len(y))")),
    m("seed heads not averaged", "mmscore/model/entailment_head.py", "tests/test_training.py::test_seed_heads_are_averaged_into_one_saved_model",
      ("    if len(heads) == 1:\n        return heads[0]\n", "    return heads[0]\n")),
    m("negation counted when both texts negate", "mmscore/model/pair_features.py", "tests/test_training.py::test_lexical_v2_sees_negation_antonyms_and_reordered_numbers",
      ("negated = bool(words_a & NEGATIONS) != bool(words_b & NEGATIONS)", "negated = bool(words_a & NEGATIONS) or bool(words_b & NEGATIONS)")),
    # the second head (issues 29 and 31)
    m("router offers only rows out of the main domain", "mmscore/model/second_head.py", "tests/test_second_head.py::test_route_takes_the_rows_strictly_more_typical_of_the_second_head",
      ("    return np.asarray(second_score, np.float32) > np.asarray(main_score, np.float32)", "    return ~np.asarray(main_in_domain, bool) & (np.asarray(second_score, np.float32) > np.asarray(main_score, np.float32))")),
    m("a routing tie goes to the second head", "mmscore/model/second_head.py", "tests/test_second_head.py::test_route_takes_the_rows_strictly_more_typical_of_the_second_head",
      ("    return np.asarray(second_score, np.float32) > np.asarray(main_score, np.float32)", "    return np.asarray(second_score, np.float32) >= np.asarray(main_score, np.float32)")),
    m("second reference counts digits", "mmscore/model/second_head.py", "tests/test_second_head.py::test_the_router_takes_real_plain_pairs_holding_a_number_and_leaves_the_tweets",
      ('UNCOUNTED_FLAGS = ("digits",)', "UNCOUNTED_FLAGS = ()")),
    m("second reference leaves links out", "mmscore/model/second_head.py", "tests/test_second_head.py::test_the_router_takes_real_plain_pairs_holding_a_number_and_leaves_the_tweets",
      ('UNCOUNTED_FLAGS = ("digits",)', 'UNCOUNTED_FLAGS = ("digits", "link")')),
    m("a reference counts every flag whatever it was fitted with", "mmscore/model/domain.py", "tests/test_domain.py::test_a_reference_that_leaves_digits_out_reads_a_number_as_any_other_word",
      ("            per_flag = per_flag * np.asarray(self.counted, bool)", "            pass")),
    m("the flags a reference counts are not saved", "mmscore/model/domain.py", "tests/test_domain.py::test_a_reference_that_leaves_digits_out_reads_a_number_as_any_other_word",
      ('        counted = {} if self.form.counted is None else {"counted_flags": np.asarray(self.form.counted, bool)}', "        counted = {}")),
    m("every out-of-domain row to the second head", "mmscore/model/second_head.py", "tests/test_second_head.py::test_one_router_for_scoring_training_figures_and_extension",
      ("        return route(main_score, main_in_domain, second)", "        return route(main_score, main_in_domain, None)")),
    m("extension routes by the main reference alone", "mmscore/training/recipe.py", "tests/test_second_head.py::test_one_router_for_scoring_training_figures_and_extension",
      ("    return second.takes(main_score, main_in_domain, emb.text_1, emb.text_2, *texts)", "    return route(main_score, main_in_domain)")),
    m("second head never consulted", "mmscore/model/predictor.py", "tests/test_second_head.py::test_the_shipped_model_labels_plain_pairs_through_it",
      ("        if self.second_head is None:\n            return probs, np.zeros(len(probs), bool)", "        if True:\n            return probs, np.zeros(len(probs), bool)")),
    m("new rows out of the base domain train the main head", "mmscore/training/recipe.py", "tests/test_extending.py::test_rows_out_of_the_base_domain_leave_its_main_head_as_it_was",
      ("        return route(main_score, main_in_domain)\n", "        return np.zeros(len(df), bool)\n")),
    m("second head calibrated on balanced labels", "mmscore/model/second_head.py", "tests/test_second_head.py::test_two_real_tweets_about_different_things_are_no_entailment",
      ("labels, weights)\n", "labels, weights / np.bincount(labels, weights, minlength=len(LABELS))[labels])\n")),
    m("an unseen label still predicted", "mmscore/model/second_head.py", "tests/test_second_head.py::test_a_label_it_never_saw_is_never_predicted",
      ("        shift[np.setdiff1d(np.arange(len(LABELS)), present)] = -1e9", "        pass")),
    m("second head's folds split a scene", "mmscore/model/second_head.py", "tests/test_second_head.py::test_pairs_sharing_a_first_text_are_held_out_together",
      ("np.array([firsts[text] % FOLDS for text in texts_1], np.int64)", "np.arange(len(texts_1)) % FOLDS")),
    # the pair reader and the mapping onto mmscore's labels (issue 37)
    m("contradiction counted whatever the relatedness", "mmscore/model/second_head.py", "tests/test_second_head.py::test_the_shipped_mapping_follows_the_rule",
      ("return np.stack([contradiction * r, entailment, neutral + contradiction * (1.0 - r)], 1)", "return np.stack([contradiction, entailment, neutral], 1)")),
    m("texts packed without segment ids", "mmscore/model/pair_reader.py", "tests/test_pair_reader.py::test_packing_keeps_both_texts_in_their_segments_within_the_budget",
      ("segment_ids[i, len(a) : len(a) + len(b)] = 1", "pass")),
    m("dropout state not checkpointed", "mmscore/training/pair_reader.py", "tests/test_pair_reader.py::test_training_resumed_from_its_checkpoint_ends_at_the_unbroken_runs_weights",
      ("    arrays.update({f\"s{i}\": v.numpy() for i, v in enumerate(_random_states(network))})", "")),
    m("resume restarts the batch order", "mmscore/training/pair_reader.py", "tests/test_pair_reader.py::test_training_resumed_from_its_checkpoint_ends_at_the_unbroken_runs_weights",
      ("        if done <= run.resumed_from:", "        if False:")),
    m("reader weights not checked against the network", "mmscore/model/pair_reader.py", "tests/test_pair_reader.py::test_a_damaged_pair_reader_is_refused_in_one_line",
      ("    if set(variables) != set(weights):", "    if False:")),
    # the pair reader's larger base, a reader continued from another, CV over seeds
    m("MPNet without its relative-position bias", "mmscore/encoders/mpnet.py", "tests/test_mpnet.py",
      ("    score_bias = _relative_bias_layer(kw)(token_ids) + hidden", "    score_bias = hidden + 0.0 * ops.cast(_relative_bias_layer(kw)(token_ids), 'float32')")),
    m("MPNet pairs with one separator between the texts", "mmscore/model/pair_reader.py", "tests/test_mpnet.py",
      ("PairFormat(mpnet.CLS, mpnet.SEP, mpnet.PAD, 2)", "PairFormat(mpnet.CLS, mpnet.SEP, mpnet.PAD, 1)")),
    m("an earlier reader's weights never laid down", "mmscore/training/pair_reader.py", "tests/test_pair_reader.py::test_training_can_start_from_an_earlier_reader_and_teach_contradictions_both_ways",
      ("        _start_from(Path(options.start_from), network, config)", "        pass")),
    m("swapped contradictions keep their order", "mmscore/training/pair_reader.py", "tests/test_pair_reader.py::test_swapping_contradictions_adds_each_one_reversed_and_nothing_else",
      ("        return NliPairs(self.ids_1 + [self.ids_2[i] for i in rows], self.ids_2 + [self.ids_1[i] for i in rows],", "        return NliPairs(self.ids_1 + [self.ids_1[i] for i in rows], self.ids_2 + [self.ids_2[i] for i in rows],")),
    m("every CV seed is the first one", "mmscore/training/recipe.py", "tests/test_training.py::test_cv_over_seeds_lists_each_seed_and_leaves_the_model_as_it_is",
      ("        reseeded = replace(options, seed=seed)", "        reseeded = options")),
    # guards for last turn's promises (issue 40)
    m("stdin spool read before it is closed", "mmscore/training/recipe.py", "tests/test_training_stdin.py",
      ("        with spooled.open(\"wb\") as out:\n            shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)\n        yield spooled", "        out = spooled.open(\"wb\")\n        shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)\n        yield spooled")),
    m("review drops --below with --out-of-domain", "mmscore/report.py", DOMAIN + "::test_review_with_out_of_domain_and_below_keeps_both_filters_at_the_exact_cut",
      ("            wanted &= np.array([flag is False", "            wanted = np.array([flag is False")),
    m("review takes rows at the cut", "mmscore/report.py", DOMAIN + "::test_review_with_out_of_domain_and_below_keeps_both_filters_at_the_exact_cut",
      ("wanted = confidence < below if below", "wanted = confidence <= below if below")),
    m("a deferred reference not counted as waiting again", "mmscore/images/loading.py", HOSTILE + "::test_while_both_hosts_have_references_waiting_neither_exceeds_the_cap",
      ("            if self.servers[ref] is not None:\n                self.per_server[self.servers[ref]] += 1\n", "")),
    m("text vectors left in length order", "mmscore/scoring/chunks.py", "tests/test_second_head.py::test_in_a_mixed_file_every_row_is_placed_and_routed_as_when_scored_alone",
      ("vectors = [chunk.in_input_order(np.concatenate(v)) for v in vectors]", "vectors = [np.concatenate(v) for v in vectors]")),
    m("a pair as typical as its more typical text", "mmscore/model/domain.py", "tests/test_second_head.py::test_a_pair_is_as_typical_as_its_less_typical_text",
      ("return np.minimum(self._text_typicality(vectors_1, texts_1), self._text_typicality(vectors_2, texts_2))", "return np.maximum(self._text_typicality(vectors_1, texts_1), self._text_typicality(vectors_2, texts_2))")),
    # a work-conserving host limit (issue 32)
    m("host cap even when alone", "mmscore/images/fetcher.py", HOSTILE + "::test_a_host_alone_uses_every_worker_and_shares_them_under_contention",
      ("self.pool_size if alone else self.per_host)", "self.per_host)")),
    m("host cap never applies", "mmscore/images/fetcher.py", HOSTILE + "::test_a_host_alone_uses_every_worker_and_shares_them_under_contention",
      ("self.pool_size if alone else self.per_host)", "self.pool_size)")),
    # fetch ahead (issue 39): pooled connections, decoding apart from fetching, a bound on bytes awaiting decode
    m("a fresh connection for every image", "mmscore/images/fetcher.py", "tests/test_fetcher.py::test_one_connection_serves_image_after_image_even_after_an_error_reply",
      ("headers=_HEADERS,", 'headers={**_HEADERS, "Connection": "close"},')),
    m("decoding in the fetch workers", "mmscore/images/loading.py", "tests/test_fetcher.py::test_fetching_goes_on_while_decoding_waits_and_stops_at_the_backlog",
      ("decoding.append(decode_pool.submit(decode, ref, fetched))", "decode(ref, fetched)")),
    m("no bound on images awaiting a decoder", "mmscore/images/loading.py", "tests/test_fetcher.py::test_fetching_goes_on_while_decoding_waits_and_stops_at_the_backlog",
      ("threading.BoundedSemaphore(2 * fetcher.pool_size)", "threading.BoundedSemaphore(10**6)")),
]  # fmt: skip


def apply(mutant: Mutant, tree: Path) -> bool:
    """Patch the copy; False if any old text is not found exactly once (the mutant is stale)."""
    path = tree / mutant.file
    text = path.read_text()
    for old, new in mutant.patches:
        if text.count(old) != 1:
            return False
        text = text.replace(old, new)
    path.write_text(text)
    return True


def copy_tree(work: Path) -> Path:
    tree = work / "repo"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            target = tree / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    shared = ROOT.parent / "shared"
    if shared.is_dir():
        (work / "shared").symlink_to(shared)  # real-data tests find ../shared/data as in the checkout
    return tree


def run_one(mutant: Mutant, timeout: float) -> tuple[str, float]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mmscore-mutant-") as work:
        tree = copy_tree(Path(work))
        if not apply(mutant, tree):
            return "STALE", time.monotonic() - started
        env = {**os.environ, "PYTHONPATH": str(tree)}  # the mutated package, ahead of the installed one
        argv = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:warnings"]
        try:
            run = subprocess.run([*argv, *mutant.tests], cwd=tree, env=env, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "killed (timeout)", time.monotonic() - started
        verdict = "killed" if run.returncode == 1 else "SURVIVED" if run.returncode == 0 else f"error {run.returncode}"
        return verdict, time.monotonic() - started


def main(names: list[str]) -> int:
    chosen = [mu for mu in MUTANTS if not names or mu.name in names]
    print(f"{len(chosen)} mutants")
    started, results = time.monotonic(), []
    for mutant in chosen:
        verdict, seconds = run_one(mutant, timeout=900)
        results.append(verdict)
        print(f"{verdict:>17}  {seconds:6.1f} s  {mutant.name}  [{' '.join(mutant.tests)}]", flush=True)
    killed = sum(v.startswith("killed") for v in results)
    print(f"killed {killed} of {len(results)} in {time.monotonic() - started:.0f} s")
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
