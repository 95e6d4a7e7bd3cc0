// What a checkpoint tensor is, judged from its name and shape as Hugging Face names them, for
// deciding which weights `afq quantize` turns into quantized linear layers.
#pragma once

#include <string>
#include <string_view>

#include "afq/tensor.h"

namespace afq {

enum class WeightKind {
  Linear,      // "<module>.weight", 2-D, of an nn.Linear
  Embedding,   // an input embedding table (embed_tokens, wte, word_embeddings, ...)
  OutputHead,  // lm_head: a linear layer that transformers and afq keep in float by default
  Other,       // norms, biases, anything not 2-D
};

WeightKind classify_weight(std::string_view tensor_name, const Shape& shape);

// "model.layers.0.mlp.up_proj.weight" -> "model.layers.0.mlp.up_proj".
std::string module_of(std::string_view tensor_name);

}  // namespace afq
