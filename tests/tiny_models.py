"""Tiny configs of every supported family, for fast exact tests (random weights)."""

import torch
from transformers import (
    AutoModel,
    BertConfig,
    Data2VecAudioConfig,
    DistilBertConfig,
    HubertConfig,
    RobertaConfig,
    Wav2Vec2Config,
    WavLMConfig,
)

# the feature encoder strides 80 samples (200 frames a second; hubert-base's 320 gives 50): a tiny model's cost is its
# attention over the frames, and a stride of 20 (800 a second) made the speech tests' attention 16 times as dear
_TINY_SPEECH = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                    conv_dim=(16, 16, 16), conv_kernel=(10, 4, 4), conv_stride=(5, 4, 4),
                    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
_TINY_TEXT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  vocab_size=100, max_position_embeddings=64)

TINY_CONFIGS = {
    "hubert": lambda: HubertConfig(**_TINY_SPEECH),
    "hubert-stable": lambda: HubertConfig(**_TINY_SPEECH, feat_extract_norm="layer",
                                          do_stable_layer_norm=True, conv_bias=True),
    "wav2vec2": lambda: Wav2Vec2Config(**_TINY_SPEECH),
    "wavlm": lambda: WavLMConfig(**_TINY_SPEECH, num_buckets=16, max_bucket_distance=32),
    "data2vec-audio": lambda: Data2VecAudioConfig(**{**_TINY_SPEECH, "num_conv_pos_embeddings": 3},
                                                  conv_pos_kernel_size=5),
    "bert": lambda: BertConfig(**_TINY_TEXT),
    "roberta": lambda: RobertaConfig(**{**_TINY_TEXT, "max_position_embeddings": 66}, pad_token_id=1),
    "distilbert": lambda: DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=100,
                                           max_position_embeddings=64),
}


def build_tiny(name: str, attn_implementation: str = "sdpa", seed: int = 0):
    torch.manual_seed(seed)
    config = TINY_CONFIGS[name]()
    try:
        model = AutoModel.from_config(config, attn_implementation=attn_implementation)
    except ValueError:  # families without SDPA (WavLM)
        model = AutoModel.from_config(config, attn_implementation="eager")
    return model.eval()
