// Test helper: writes the model file format (docs/model_format.md) from a graph JSON string and named
// float32 tensors, the way spikeops.export does, so the C++ tests need no Python.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace spikeops_test {

struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

inline std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

inline std::string model_file_bytes(const std::string& graph_json, const std::vector<NamedTensor>& tensors,
                                    const std::string& format_version = "1") {
  std::string header = "{\"__metadata__\": {\"format\": \"spikeops\", \"format_version\": \"" + format_version +
                       "\", \"graph\": \"" + json_escape(graph_json) + "\"}";
  std::string data;
  for (const NamedTensor& t : tensors) {
    const std::size_t begin = data.size();
    data.append(reinterpret_cast<const char*>(t.values.data()), t.values.size() * sizeof(float));
    header += ", \"" + t.name + "\": {\"dtype\": \"F32\", \"shape\": [";
    for (std::size_t i = 0; i < t.shape.size(); ++i) header += (i ? ", " : "") + std::to_string(t.shape[i]);
    header += "], \"data_offsets\": [" + std::to_string(begin) + ", " + std::to_string(data.size()) + "]}";
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';
  std::string file(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) file[std::size_t(i)] = char((n >> (8 * i)) & 0xFF);
  return file + header + data;
}

}  // namespace spikeops_test
