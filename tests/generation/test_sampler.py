import numpy as np
import pytest
import tensorflow as tf

from pipeline.core.errors import PipelineError
from pipeline.generation.decoding import SamplingSettings
from pipeline.generation.sampler import (
    Sampler,
    SequenceSampler,
    WindowSampler,
    bucket,
    make_sampler,
)
from pipeline.lstm.builders import ModelShape, build_sequence_model, build_tutorial_model

VOCABULARY = list("\n abcdefgh")


@pytest.fixture(scope="module")
def sampler() -> Sampler:
    tf.keras.utils.set_random_seed(0)
    params = ModelShape(embedding_dim=8, units=16, layers=2)
    return make_sampler(build_sequence_model(len(VOCABULARY), params), VOCABULARY)


def test_same_seed_same_text_and_other_seed_other_text(sampler):
    prompts = ["abc", "bad"]
    first = sampler.generate(prompts, 40, SamplingSettings(temperature=1.0, seed=3))
    again = sampler.generate(prompts, 40, SamplingSettings(temperature=1.0, seed=3))
    other = sampler.generate(prompts, 40, SamplingSettings(temperature=1.0, seed=4))
    assert first == again
    assert first != other
    assert all(len(text) == 40 and set(text) <= set(VOCABULARY) for text in first)


def test_stepwise_sampler_matches_the_full_model(sampler):
    """Greedy stepping with carried state must equal re-running the model on the whole text."""
    prompt = "abcab"
    text = sampler.generate([prompt], 6, SamplingSettings(temperature=0))[0]
    model_input = np.array([[VOCABULARY.index(c) for c in prompt + text[:-1]]], dtype=np.int32)
    logits = np.asarray(sampler.model(model_input))  # (1, time, vocab)
    expected = "".join(VOCABULARY[i] for i in logits[0, len(prompt) - 1 :].argmax(-1))
    assert text == expected


def test_top_k_one_is_greedy(sampler):
    greedy = sampler.generate(["ab"], 20, SamplingSettings(temperature=0))
    top1 = sampler.generate(["ab"], 20, SamplingSettings(temperature=1.5, top_k=1, seed=9))
    assert greedy == top1


@pytest.mark.parametrize(
    ("prompts", "length", "message"),
    [
        ([""], 5, "prompt is empty"),
        (["abz"], 5, "not in the model's vocabulary: 'z'"),
        (["ab"], 0, "length must be at least 1"),
        ([], 5, "no prompts given"),
    ],
)
def test_bad_generation_requests(sampler, prompts, length, message):
    with pytest.raises(PipelineError, match=message):
        sampler.generate(prompts, length, SamplingSettings())


def test_extreme_seeds_within_int64_generate(sampler):
    for seed in (2**63 - 1, -(2**63)):
        (text,) = sampler.generate(["ab"], 5, SamplingSettings(seed=seed))
        assert len(text) == 5


def test_prompts_of_different_lengths_continue_as_if_alone(sampler):
    greedy = SamplingSettings(temperature=0)
    prompts = ["a", "bad cafe", "ab"]
    together = sampler.generate(prompts, 12, greedy)
    assert together == [sampler.generate([prompt], 12, greedy)[0] for prompt in prompts]


@pytest.mark.parametrize("size", [len(VOCABULARY) - 1, len(VOCABULARY) + 1])
def test_a_vocabulary_of_another_size_than_the_model_is_refused(sampler, size):
    vocabulary = [chr(ord("A") + i) for i in range(size)]
    with pytest.raises(PipelineError, match=f"vocabulary has {size} characters but model"):
        make_sampler(sampler.model, vocabulary)


def test_streamed_chunks_equal_one_call(sampler):
    settings = SamplingSettings(temperature=0.9, top_p=0.9, seed=5)
    whole = sampler.generate(["abc", "cab"], 25, settings)
    pieces = list(sampler.stream(["abc", "cab"], 25, settings, chunk=7))
    assert len(pieces) == 4
    assert ["".join(parts) for parts in zip(*pieces, strict=True)] == whole


def test_uppercase_prompt_letters_map_to_a_lowercase_vocabulary(sampler):
    assert sampler.encode_prompt("Bad").tolist() == sampler.encode_prompt("bad").tolist()


def test_make_sampler_picks_by_architecture(sampler):
    assert isinstance(sampler, SequenceSampler)
    params = ModelShape(embedding_dim=8, units=8, layers=2)
    tutorial = make_sampler(build_tutorial_model(len(VOCABULARY), 50, params), VOCABULARY)
    assert isinstance(tutorial, WindowSampler)


def test_window_sampler_pads_a_batch_of_different_prompt_lengths_with_spaces():
    tf.keras.utils.set_random_seed(2)
    model = build_tutorial_model(len(VOCABULARY), 6, ModelShape(embedding_dim=8, units=8, layers=1))
    tutorial = make_sampler(model, VOCABULARY)
    greedy = SamplingSettings(temperature=0)
    prompts = ["a", "bad", "cafe bad"]
    together = tutorial.generate(prompts, 10, greedy)
    assert together == [tutorial.generate([prompt], 10, greedy)[0] for prompt in prompts]
    assert together[0] == tutorial.generate(["     a"], 10, greedy)[0]


def test_window_sampler_matches_the_tutorial_model():
    """The compiled sliding-window loop gives what calling the model per character gives."""
    tf.keras.utils.set_random_seed(1)
    model = build_tutorial_model(len(VOCABULARY), 5, ModelShape(embedding_dim=8, units=8, layers=1))
    tutorial: Sampler = make_sampler(model, VOCABULARY)
    text = tutorial.generate(["ab"], 8, SamplingSettings(temperature=0))[0]
    window = [VOCABULARY.index(" ")] * 3 + [VOCABULARY.index(c) for c in "ab"]
    expected = ""
    for _ in range(8):
        scaled = np.array(window[-5:], dtype=np.float32)[None, :, None] / len(VOCABULARY)
        next_id = int(np.asarray(model(scaled)).argmax())
        expected += VOCABULARY[next_id]
        window.append(next_id)
    assert text == expected


def test_bucket_rounds_up_to_a_power_of_two_from_sixteen():
    assert [bucket(n) for n in (1, 16, 17, 32, 33, 1000)] == [16, 16, 32, 32, 64, 1024]


def test_the_sequence_sampler_runs_under_xla_and_returns_exactly_the_length_asked(sampler):
    assert sampler.jit_compile and not WindowSampler.jit_compile
    for length in (1, 17, 40):  # inside buckets of 16, 32 and 64
        (text,) = sampler.generate(["ab"], length, SamplingSettings(seed=1))
        assert len(text) == length
    # the longer call's first 17 characters are the shorter call's: the bucket changes no draw
    short, long = (sampler.generate(["ab"], n, SamplingSettings(seed=1))[0] for n in (17, 40))
    assert long.startswith(short)


def test_a_batch_past_the_xla_limit_samples_on_the_graph_and_streams_as_one_call(sampler):
    prompts = ["ab", "ba"] * (sampler.jit_max_batch // 2 + 1)  # one row more than XLA takes
    settings = SamplingSettings(temperature=0.9, seed=5)
    whole = sampler.generate(prompts, 20, settings)
    pieces = list(sampler.stream(prompts, 20, settings, chunk=7))
    assert ["".join(parts) for parts in zip(*pieces, strict=True)] == whole
    assert all(len(text) == 20 for text in whole)
