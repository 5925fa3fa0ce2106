// Spike-GEMM inference of an exported MNIST network with the spikeops C++ runtime: no Python, no torch.
//
//   python -m spikeops.examples.csnn_mnist --data-dir DIR --export csnn.spikeops     (train and export)
//   ./mnist_infer csnn.spikeops DIR [--batch 64] [--limit N] [--threads N] [--device cpu|cuda[:N]]
//                [--predictions FILE] [--json]
//
// Reads the MNIST test set (t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, gzipped or not) from DIR, runs
// the network over it, and prints the accuracy, images per second and the synaptic operations per image.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#if SPIKEOPS_EXAMPLE_HAS_ZLIB
#include <zlib.h>
#endif

#include "spikeops/spikeops.hpp"

namespace {

// The whole file, gunzipped when its name ends in .gz.
std::vector<unsigned char> read_file(const std::string& path) {
  std::vector<unsigned char> out;
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) {
#if SPIKEOPS_EXAMPLE_HAS_ZLIB
    gzFile f = gzopen(path.c_str(), "rb");
    if (!f) throw std::runtime_error("cannot open " + path);
    unsigned char buf[1 << 16];
    int n;
    while ((n = gzread(f, buf, sizeof(buf))) > 0) out.insert(out.end(), buf, buf + n);
    const bool failed = n < 0;
    gzclose(f);
    if (failed) throw std::runtime_error(path + ": corrupt gzip data");
    return out;
#else
    throw std::runtime_error(path + " is gzipped but this program was built without zlib; gunzip it first");
#endif
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return out;
}

uint32_t big_endian_u32(const std::vector<unsigned char>& b, std::size_t at) {
  return uint32_t(b[at]) << 24 | uint32_t(b[at + 1]) << 16 | uint32_t(b[at + 2]) << 8 | uint32_t(b[at + 3]);
}

// "<dir>/<name>" or "<dir>/<name>.gz", whichever exists.
std::string find_idx(const std::string& dir, const std::string& name) {
  for (const std::string& candidate : {dir + "/" + name, dir + "/" + name + ".gz"}) {
    if (std::ifstream(candidate).good()) return candidate;
  }
  throw std::runtime_error("no " + name + "[.gz] in " + dir);
}

// IDX files: a magic number (0x00000803 images, 0x00000801 labels), the sizes, then unsigned bytes.
void load_mnist_test(const std::string& dir, std::vector<float>& images, std::vector<int64_t>& labels) {
  const std::string image_path = find_idx(dir, "t10k-images-idx3-ubyte");
  const std::string label_path = find_idx(dir, "t10k-labels-idx1-ubyte");
  const std::vector<unsigned char> img = read_file(image_path), lab = read_file(label_path);
  if (img.size() < 16 || big_endian_u32(img, 0) != 0x803) throw std::runtime_error(image_path + ": not an IDX image file");
  if (lab.size() < 8 || big_endian_u32(lab, 0) != 0x801) throw std::runtime_error(label_path + ": not an IDX label file");
  const std::size_t n = big_endian_u32(img, 4), rows = big_endian_u32(img, 8), cols = big_endian_u32(img, 12);
  if (rows != 28 || cols != 28 || img.size() != 16 + n * 784) throw std::runtime_error(image_path + ": truncated or not 28x28");
  if (big_endian_u32(lab, 4) != n || lab.size() != 8 + n) throw std::runtime_error(label_path + ": does not match the images");
  images.resize(n * 784);
  for (std::size_t i = 0; i < n * 784; ++i) images[i] = float(img[16 + i]) / 255.0f;  // as torchvision's ToTensor
  labels.assign(lab.begin() + 8, lab.end());
}

void usage() {
  std::fprintf(stderr,
               "usage: mnist_infer MODEL DATA_DIR [--batch B] [--limit N] [--threads N] [--seed S]\n"
               "                   [--device cpu|cuda[:N]] [--predictions FILE] [--json]\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    usage();
    return 2;
  }
  const std::string model_path = argv[1], data_dir = argv[2];
  int64_t batch = 64, limit = -1;
  uint64_t seed = 0;
  std::string predictions_path, device = "cpu";
  bool json = false;
  for (int i = 3; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--batch" && has_value) {
      batch = std::atoll(argv[++i]);
    } else if (a == "--limit" && has_value) {
      limit = std::atoll(argv[++i]);
    } else if (a == "--threads" && has_value) {
      spikeops::set_cpu_threads(std::atoi(argv[++i]));
    } else if (a == "--seed" && has_value) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--device" && has_value) {
      device = argv[++i];
    } else if (a == "--predictions" && has_value) {
      predictions_path = argv[++i];
    } else if (a == "--json") {
      json = true;
    } else {
      usage();
      return 2;
    }
  }
  if (batch < 1) {
    std::fprintf(stderr, "--batch must be >= 1\n");
    return 2;
  }

  try {
    spikeops::Model model = spikeops::Model::load(model_path);
    const bool cuda_index = device.rfind("cuda:", 0) == 0 && device.size() > 5 &&
                            device.find_first_not_of("0123456789", 5) == std::string::npos;
    if (device == "cuda" || cuda_index) {  // a library built with CUDA runs the model on that GPU
      model.to(spikeops::Device::kCUDA, cuda_index ? std::atoi(device.c_str() + 5) : 0);
    } else if (device != "cpu") {
      throw std::runtime_error("--device must be cpu, cuda or cuda:N, got " + device);
    }
    if (model.input_numel() != 784) {
      throw std::runtime_error("the model takes " + std::to_string(model.input_numel()) +
                               " inputs per sample, MNIST images have 784");
    }
    std::vector<float> images;
    std::vector<int64_t> labels;
    load_mnist_test(data_dir, images, labels);
    const int64_t n = limit >= 0 && limit < int64_t(labels.size()) ? limit : int64_t(labels.size());
    if (!json) std::printf("%s", model.summary().c_str());

    std::FILE* pred_file = nullptr;
    if (!predictions_path.empty() && !(pred_file = std::fopen(predictions_path.c_str(), "w"))) {
      throw std::runtime_error("cannot write " + predictions_path);
    }
    // One untimed run first: the model allocates its buffers for this batch size once and reuses them.
    model.run(images.data(), std::min(batch, n), seed);
    model.reset_reports();
    int64_t correct = 0;
    double seconds = 0.0;
    for (int64_t start = 0; start < n; start += batch) {
      const int64_t b = std::min(batch, n - start);
      const auto t0 = std::chrono::steady_clock::now();
      const spikeops::InferenceResult r = model.run(images.data() + start * 784, b, seed + uint64_t(start));
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (int64_t i = 0; i < b; ++i) {
        correct += r.predictions[std::size_t(i)] == labels[std::size_t(start + i)];
        if (pred_file) {  // index, prediction, scores: what CI compares with the Python model
          std::fprintf(pred_file, "%lld %lld", (long long)(start + i), (long long)r.predictions[std::size_t(i)]);
          for (int64_t j = 0; j < r.num_outputs; ++j) std::fprintf(pred_file, " %.9g", r.scores[std::size_t(i * r.num_outputs + j)]);
          std::fprintf(pred_file, "\n");
        }
      }
    }
    if (pred_file) std::fclose(pred_file);

    int64_t synaptic_ops = 0, dense_macs = 0;
    for (const spikeops::LayerReport& rep : model.reports()) {
      synaptic_ops += rep.synaptic_ops;
      dense_macs += rep.dense_macs;
    }
    const double accuracy = n ? double(correct) / double(n) : 0.0, per_second = seconds > 0 ? double(n) / seconds : 0.0;
    if (json) {
      std::printf("{\"images\": %lld, \"batch\": %lld, \"device\": \"%s\", \"threads\": %d, \"accuracy\": %.6f, "
                  "\"seconds\": %.6f, \"images_per_second\": %.2f, \"synaptic_ops_per_image\": %.1f, "
                  "\"dense_macs_per_image\": %.1f}\n",
                  (long long)n, (long long)batch, device.c_str(), spikeops::cpu_threads(), accuracy, seconds, per_second,
                  n ? double(synaptic_ops) / double(n) : 0.0, n ? double(dense_macs) / double(n) : 0.0);
      return 0;
    }
    std::printf("\n%-10s %-10s %-14s %12s %16s %14s\n", "layer", "type", "input", "firing rate", "synaptic ops/img",
                "dense MACs/img");
    for (const spikeops::LayerReport& rep : model.reports()) {
      const bool neuron = rep.neuron_steps > 0;
      char rate[32] = "";
      if (neuron) std::snprintf(rate, sizeof(rate), "%.4f", rep.firing_rate());
      std::printf("%-10s %-10s %-14s %12s %16.0f %14.0f\n", rep.name.c_str(), rep.type.c_str(),
                  neuron ? "" : rep.spike_input ? "spikes (1 B)" : "real values", rate,
                  n ? double(rep.synaptic_ops) / double(n) : 0.0, n ? double(rep.dense_macs) / double(n) : 0.0);
    }
    std::printf("\n%lld test images, batch %lld, %s, %d CPU threads: accuracy %.2f%%, %.0f images/s, "
                "%.0f synaptic accumulates and %.0f dense multiply-accumulates per image\n",
                (long long)n, (long long)batch, device.c_str(), spikeops::cpu_threads(), 100.0 * accuracy, per_second,
                n ? double(synaptic_ops) / double(n) : 0.0, n ? double(dense_macs) / double(n) : 0.0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mnist_infer: %s\n", e.what());
    return 1;
  }
  return 0;
}
