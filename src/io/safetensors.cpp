// safetensors reading and writing. The whole header is validated before any tensor is
// created, in the order the reference implementation checks: header length, JSON,
// entries (dtype, shape, offsets), then that the offsets tile the data exactly.
#include "kiln/io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace kiln {

static_assert(std::endian::native == std::endian::little, "safetensors stores little-endian data");

namespace {

using json = nlohmann::json;
constexpr const char* kOp = "safetensors";
constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference reader's limit
constexpr const char* kMetadataKey = "__metadata__";
// {name: {"shape": [dims]}} is as deep as the format goes.
constexpr int kMaxHeaderDepth = 3;
// Messages quote at most this much of a rejected value or name.
constexpr size_t kMaxQuoted = 64;

struct DTypeName { DType dtype; const char* name; };
constexpr DTypeName kDTypeNames[] = {
    {DType::Float32, "F32"}, {DType::Float64, "F64"}, {DType::Float16, "F16"}, {DType::BFloat16, "BF16"},
    {DType::Int32, "I32"},   {DType::Int64, "I64"},   {DType::Bool, "BOOL"},
};

bool dtype_from_name(const std::string& name, DType* out) {
  for (const auto& d : kDTypeNames)
    if (name == d.name) { *out = d.dtype; return true; }
  return false;
}

// One tensor's header entry, validated.
struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

// A bounded prefix of s for an error message.
std::string bounded(const std::string& s) {
  return s.size() <= kMaxQuoted ? s : s.substr(0, kMaxQuoted) + "... (" + std::to_string(s.size()) + " bytes)";
}
std::string bounded(const json& v) { return bounded(v.dump()); }  // depth is <= 3 here: dump() recurses

// Rejects, before parsing, what no valid header holds and what would make later steps
// recurse or stop early: nesting deeper than the format's three levels, and NUL bytes
// (never valid in JSON text, raw or inside a string).
void check_header_text(const std::string& file, const char* hdr, uint64_t n) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (uint64_t i = 0; i < n; ++i) {
    const char c = hdr[i];
    KILN_CHECK(c != '\0', kOp, file, ": header holds a NUL byte at offset ", i, " (not valid JSON text)");
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      KILN_CHECK(++depth <= kMaxHeaderDepth, kOp, file, ": header nests deeper than the format's ", kMaxHeaderDepth,
                 " levels at offset ", i, " (a shape is a flat list of integers)");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

// Parses the header, raising on a key that repeats within one object (a tensor name
// given twice would otherwise silently take the last entry).
json parse_header(const std::string& file, const char* hdr, uint64_t n) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  std::string duplicate;
  const json::parser_callback_t cb = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (event == json::parse_event_t::key && !keys.empty()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json header = json::parse(hdr, hdr + n, cb, /*allow_exceptions=*/false);
  KILN_CHECK(!header.is_discarded(), kOp, file, ": header is not valid JSON");
  KILN_CHECK(duplicate.empty(), kOp, file, ": header names '", bounded(duplicate),
             "' twice (duplicate keys are ambiguous; the file is corrupt)");
  return header;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  KILN_CHECK(in.good(), kOp, path, ": cannot open file for reading");
  std::ostringstream os;
  os << in.rdbuf();
  KILN_CHECK(!in.bad(), kOp, path, ": read error");
  return std::move(os).str();
}

Entry parse_entry(const std::string& file, const std::string& full_name, const json& v, uint64_t data_size) {
  const std::string name = bounded(full_name);  // for messages
  KILN_CHECK(v.is_object(), kOp, file, ": entry '", name, "' is not a JSON object");
  const auto dt = v.find("dtype");
  const auto sh = v.find("shape");
  const auto off = v.find("data_offsets");
  KILN_CHECK(dt != v.end() && sh != v.end() && off != v.end(), kOp, file, ": entry '", name,
             "' needs dtype, shape and data_offsets");
  KILN_CHECK(dt->is_string(), kOp, file, ": entry '", name, "': dtype is not a string");
  Entry e;
  e.name = full_name;
  KILN_CHECK(dtype_from_name(dt->get<std::string>(), &e.dtype), kOp, file, ": entry '", name,
             "' has unknown dtype '", bounded(dt->get<std::string>()), "' (kiln reads F32, F64, F16, BF16, I32, I64, BOOL)");
  KILN_CHECK(sh->is_array(), kOp, file, ": entry '", name, "': shape is not an array");
  uint64_t numel = 1;
  for (const json& d : *sh) {
    KILN_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0), kOp, file,
               ": entry '", name, "': shape ", bounded(*sh), " has a dimension that is not a non-negative integer");
    const uint64_t n = d.get<uint64_t>();
    KILN_CHECK(n <= uint64_t(std::numeric_limits<int64_t>::max()) &&
                   (n == 0 || numel <= std::numeric_limits<uint64_t>::max() / n),
               kOp, file, ": entry '", name, "': shape ", bounded(*sh), " overflows");
    numel *= n;
    e.shape.push_back(int64_t(n));
  }
  KILN_CHECK(!shape_overflows(e.shape), kOp, file, ": entry '", name, "': shape ", bounded(*sh),
             " overflows int64 (its element count or strides cannot be represented)");
  KILN_CHECK(off->is_array() && off->size() == 2 && (*off)[0].is_number_unsigned() &&
                 (*off)[1].is_number_unsigned(),
             kOp, file, ": entry '", name, "': data_offsets ", bounded(*off), " is not [begin, end]");
  e.begin = (*off)[0].get<uint64_t>();
  e.end = (*off)[1].get<uint64_t>();
  KILN_CHECK(e.begin <= e.end, kOp, file, ": entry '", name, "': data_offsets [", e.begin, ", ", e.end,
             "] end before they begin");
  const uint64_t esize = element_size(e.dtype);
  KILN_CHECK(numel <= std::numeric_limits<uint64_t>::max() / esize && e.end - e.begin == numel * esize, kOp,
             file, ": entry '", name, "': data_offsets [", e.begin, ", ", e.end, ") hold ", e.end - e.begin,
             " bytes but ", dt->get<std::string>(), " of shape ", shape_str(e.shape), " needs ", numel * esize);
  KILN_CHECK(e.end <= data_size, kOp, file, ": truncated data: entry '", name, "' needs bytes [", e.begin, ", ",
             e.end, ") but only ", data_size, " bytes follow the header");
  return e;
}

Tensor make_tensor(const Entry& e, const char* data, Device device) {
  Tensor t = empty(e.shape, TensorOptions(e.dtype).device(kCpu));
  if (e.end > e.begin) std::memcpy(t.data_ptr(), data + e.begin, e.end - e.begin);
  if (e.dtype == DType::Bool) {  // any non-zero byte is true; keep kiln's 0/1 invariant
    auto* p = static_cast<uint8_t*>(t.data_ptr());
    for (uint64_t i = 0; i < e.end - e.begin; ++i) p[i] = p[i] != 0;
  }
  return device == kCpu ? t : t.to(device);
}

}  // namespace

const char* safetensors_dtype_name(DType t) {
  for (const auto& d : kDTypeNames)
    if (d.dtype == t) return d.name;
  KILN_FAIL(kOp, "dtype ", dtype_name(t), " has no safetensors name");
}

std::string serialize_safetensors(const TensorMap& tensors, const SafetensorsMetadata& metadata) {
  // Largest elements first, then by name: every tensor's offset is a multiple of its
  // element size, as the reference writer arranges it.
  std::vector<std::pair<std::string, Tensor>> order;
  for (const auto& [name, t] : tensors) {
    KILN_CHECK(name != kMetadataKey, kOp, "'", kMetadataKey, "' is reserved and cannot name a tensor");
    KILN_CHECK(t.defined(), kOp, "tensor '", name, "' is undefined");
    order.emplace_back(name, t.detach().to(kCpu).contiguous());
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.second.element_size() > b.second.element_size();
  });
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : order) {
    json shape = json::array();
    for (int64_t d : t.shape()) shape.push_back(d);
    header[name] = {{"dtype", safetensors_dtype_name(t.dtype())},
                    {"shape", shape},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  if (!metadata.empty()) {
    json meta = json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header[kMetadataKey] = meta;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = text.size();
  std::memcpy(out.data(), &n, 8);
  out += text;
  out.reserve(out.size() + offset);
  for (const auto& [name, t] : order) out.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  return out;
}

void save_safetensors(const std::string& path, const TensorMap& tensors, const SafetensorsMetadata& metadata) {
  const std::string bytes = serialize_safetensors(tensors, metadata);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  KILN_CHECK(out.good(), kOp, path, ": cannot open file for writing");
  out.write(bytes.data(), std::streamsize(bytes.size()));
  out.close();
  KILN_CHECK(out.good(), kOp, path, ": write failed");
}

SafetensorsContents parse_safetensors(const std::string& bytes, const std::string& file, Device device) {
  KILN_CHECK(bytes.size() >= 8, kOp, file, ": file is ", bytes.size(),
             " bytes, too short to hold the 8-byte header length");
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  KILN_CHECK(n <= kMaxHeaderBytes, kOp, file, ": header length ", n, " exceeds the ", kMaxHeaderBytes,
             "-byte limit (corrupt or not a safetensors file)");
  KILN_CHECK(n <= bytes.size() - 8, kOp, file, ": header length ", n, " runs past the end of the file (",
             bytes.size(), " bytes)");
  const char* hdr = bytes.data() + 8;
  check_header_text(file, hdr, n);
  const json header = parse_header(file, hdr, n);
  KILN_CHECK(header.is_object(), kOp, file, ": header is not a JSON object");
  const uint64_t data_size = bytes.size() - 8 - n;

  SafetensorsContents out;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == kMetadataKey) {
      KILN_CHECK(it.value().is_object(), kOp, file, ": ", kMetadataKey, " is not a JSON object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        KILN_CHECK(m.value().is_string(), kOp, file, ": ", kMetadataKey, " value of '", bounded(m.key()),
                   "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(file, it.key(), it.value(), data_size));
  }
  // The offsets must tile [0, data_size) exactly: no gaps, no overlaps, nothing after.
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t expected = 0;
  for (const Entry* e : by_offset) {
    KILN_CHECK(e->begin == expected, kOp, file, ": entry '", bounded(e->name), "' starts at byte ", e->begin,
               " but the previous tensor ends at ", expected, e->begin < expected ? " (overlap)" : " (gap)");
    expected = e->end;
  }
  KILN_CHECK(expected == data_size, kOp, file, ": ", data_size - expected,
             " bytes after the last tensor are not described by the header");

  const char* data = hdr + n;
  for (const Entry& e : entries) out.tensors.emplace(e.name, make_tensor(e, data, device));
  return out;
}

SafetensorsContents load_safetensors_file(const std::string& path, Device device) {
  return parse_safetensors(read_file(path), path, device);
}

TensorMap load_safetensors(const std::string& path, Device device) {
  return load_safetensors_file(path, device).tensors;
}

void load_safetensors_into(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& targets,
                           bool strict) {
  const TensorMap loaded = load_safetensors(path);
  std::string missing, mismatched, unexpected;
  // Lists stay readable whatever the file holds: bounded names, at most 20 of each kind.
  auto append = [](std::string& list, int& count, const std::string& item) {
    if (++count <= 20) list += (list.empty() ? "" : ", ") + item;
    else if (count == 21) list += ", ...";
  };
  int n_missing = 0, n_mismatched = 0, n_unexpected = 0;
  std::map<std::string, bool> wanted;
  for (const auto& [name, t] : targets) {
    wanted[name] = true;
    KILN_CHECK(t.defined(), kOp, path, ": target '", name, "' is undefined");
    const auto it = loaded.find(name);
    if (it == loaded.end()) {
      append(missing, n_missing, bounded(name));
    } else if (it->second.shape() != t.shape()) {
      append(mismatched, n_mismatched,
             bounded(name) + " (file " + shape_str(it->second.shape()) + ", model " + shape_str(t.shape()) + ")");
    }
  }
  if (strict)
    for (const auto& [name, t] : loaded)
      if (!wanted.count(name)) append(unexpected, n_unexpected, bounded(name));
  KILN_CHECK(missing.empty() && mismatched.empty() && unexpected.empty(), kOp, path,
             ": does not match the model; nothing was loaded.", missing.empty() ? "" : " Missing keys: ", missing,
             missing.empty() ? "" : ".", mismatched.empty() ? "" : " Shape mismatch: ", mismatched,
             mismatched.empty() ? "" : ".", unexpected.empty() ? "" : " Unexpected keys: ", unexpected,
             unexpected.empty() ? "" : ".");
  for (const auto& [name, t] : targets) {
    Tensor dst = t.detach();  // same storage, no autograd history: a plain data copy
    dst.copy_(loaded.at(name));
  }
}

void load_safetensors_into(const std::string& path, const TensorMap& targets, bool strict) {
  load_safetensors_into(path, std::vector<std::pair<std::string, Tensor>>(targets.begin(), targets.end()), strict);
}

}  // namespace kiln
