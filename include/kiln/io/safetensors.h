#pragma once
// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors):
// an 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end)}, ...,
//    "__metadata__": {"key": "value"}}
// padded with spaces to a multiple of 8, then the tensors' raw bytes, contiguous, with
// offsets relative to the end of the header. Files kiln writes are readable by the
// reference implementation (largest elements first, so every tensor is aligned).
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kiln/tensor.h"

namespace kiln {

using TensorMap = std::map<std::string, Tensor>;
using SafetensorsMetadata = std::map<std::string, std::string>;

struct SafetensorsContents {
  TensorMap tensors;
  SafetensorsMetadata metadata;
};

// Writes tensors (any device, any layout: copied to contiguous host memory first).
// Throws kiln::Error naming the file when it cannot be written.
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const SafetensorsMetadata& metadata = {});
// The bytes of such a file, for writing elsewhere or testing.
std::string serialize_safetensors(const TensorMap& tensors, const SafetensorsMetadata& metadata = {});

// Reads and validates a whole file (header length, JSON, dtypes, shapes, offsets, data
// size); any problem is a kiln::Error naming the file and what is wrong. Tensors are
// placed on `device`.
SafetensorsContents load_safetensors_file(const std::string& path, Device device = kCpu);
TensorMap load_safetensors(const std::string& path, Device device = kCpu);
// The same from bytes in memory; `name` is used in error messages.
SafetensorsContents parse_safetensors(const std::string& bytes, const std::string& name = "<memory>",
                                      Device device = kCpu);

// Copies the file's tensors into existing tensors (a module's state dict: the tensors
// are handles to the parameters and buffers). Every target must be present with the
// same shape (dtypes are converted); with strict, the file must hold no other tensor.
// Everything is validated before the first copy, so on any error nothing changes.
void load_safetensors_into(const std::string& path, const TensorMap& targets, bool strict = true);
void load_safetensors_into(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& targets,
                           bool strict = true);

// The safetensors name of a dtype ("F32", "BF16", "BOOL", ...) and back (throws on unknown).
const char* safetensors_dtype_name(DType t);

}  // namespace kiln
