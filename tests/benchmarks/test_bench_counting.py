"""Speed of exact MAC counting (pytest-benchmark; the target, well under a second for the
largest presets, is read from the report, not asserted on time)."""

import pytest
import torch
from transformers import AutoModel

from compbench.counting.macs import count_macs
from compbench.models import PRESETS, InputSpec, ModelAdapter, load_model

pytestmark = pytest.mark.serial  # timed for real: alone, never beside other tests


@pytest.mark.parametrize("name", ["hubert-large", "wav2vec2-large", "bert-base"])
def test_bench_count_meta_preset(benchmark, name):
    with torch.device("meta"):
        model = AutoModel.from_config(PRESETS.get(name).make_config())
    adapter = ModelAdapter(model)
    size = 10 if adapter.modality == "speech" else 128
    inputs = adapter.build_inputs(InputSpec(adapter.modality, size), "meta")
    result = benchmark(count_macs, model, inputs, adapter.component_of)
    assert result.total > 0


def test_bench_count_real_weights_via_meta_clone(benchmark):
    """A model with real weights is cloned to meta; nonzero counts come from the real weights."""
    loaded = load_model("hubert-base")
    inputs = loaded.adapter.build_inputs(InputSpec("speech", 10), "meta")
    result = benchmark.pedantic(count_macs, args=(loaded.model, inputs, loaded.adapter.component_of),
                                rounds=3, iterations=1)
    assert result.total == 74_066_523_136
