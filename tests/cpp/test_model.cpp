// Tests of the model runtime (spikeops::Model) through the public header: a network small enough to check by
// hand, every layer type run once, the loader's error messages, and a fuzz loop over damaged files (byte
// flips, truncations, edited numbers) that must only ever produce spikeops::Error, never a crash. Built with
// -DSPIKEOPS_SANITIZE=address,undefined in CI so an out-of-bounds read fails the run.
//
//   spikeops_model_tests [mutations]    (default 20000)
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "check.hpp"
#include "model_file_writer.hpp"
#include "spikeops/spikeops.hpp"

using namespace spikeops;
using spikeops_test::model_file_bytes;
using spikeops_test::NamedTensor;

namespace {

// x [3] -> linear (integer weights) -> IF, T = 4, direct input: small enough to work out by hand.
const char* kTinyGraph = R"({"time_steps": 4, "encoding": "direct", "input_shape": [3], "layers": [
  {"name": "fc", "type": "linear", "weight": "fc.weight", "bias": "fc.bias", "in_features": 3, "out_features": 2,
   "output_shape": [2]},
  {"name": "sn", "type": "if", "v_threshold": 1.0, "v_reset": 0.0, "detach_reset": false, "surrogate": "Sigmoid",
   "output_shape": [2]}]})";

std::string tiny_file() {
  return model_file_bytes(kTinyGraph, {{"fc.weight", {2, 3}, {1, 0, 0, 0, 0.5f, 0}}, {"fc.bias", {2}, {0, 0.25f}}});
}

void test_tiny_network() {
  const std::string file = tiny_file();
  Model model = Model::from_buffer(file.data(), file.size(), "tiny");
  CHECK(model.time_steps() == 4);
  CHECK(model.num_outputs() == 2);
  CHECK(model.input_numel() == 3);
  // sample 0: currents (1, 0.25): neuron 0 fires every step; neuron 1 charges 0.25 per step, fires at step 4.
  // sample 1: currents (0.5, 0.25 + 0.5*1 = 0.75): neuron 0 fires at steps 2 and 4; neuron 1 at 2 and 4 (1.5 -> 1,
  //           then 0.75, 1.5).
  const std::vector<float> x = {1, 0, 0, 0.5f, 1, 0};
  InferenceResult r = model.run(x.data(), 2);
  CHECK(r.batch == 2 && r.num_outputs == 2);
  CHECK(r.scores == std::vector<float>({4, 1, 2, 2}));
  CHECK(r.predictions == std::vector<int64_t>({0, 0}));  // the first index on ties, as torch.argmax
  const std::vector<LayerReport>& rep = model.reports();
  CHECK(rep.size() == 2);
  CHECK(rep[0].dense_macs == 2 * 3 * 2);  // direct input: the linear layer runs once per sample, not per step
  CHECK(rep[1].spikes == 9 && rep[1].neuron_steps == 4 * 2 * 2);
  model.reset_reports();
  CHECK(model.reports()[1].spikes == 0);
  CHECK(model.run(x.data(), 0).scores.empty());
  EXPECT_ERROR(model.run(nullptr, 1), "input is null");
  EXPECT_ERROR(model.run(x.data(), -1), "batch must be >= 0");
}

// Every layer type, both input kinds of linear and conv: conv on real values -> LIF -> conv on spikes ->
// average pooling -> PLIF -> max pooling of spikes -> flatten -> linear on spikes -> IF.
const char* kFullGraph = R"({"time_steps": 3, "encoding": "direct", "input_shape": [1, 6, 6], "layers": [
  {"name": "0", "type": "conv2d", "weight": "0.weight", "bias": "0.bias", "in_channels": 1, "out_channels": 2,
   "kernel_size": [3, 3], "stride": [1, 1], "padding": [1, 1], "dilation": [1, 1], "groups": 1, "output_shape": [2, 6, 6]},
  {"name": "1", "type": "lif", "tau": 2.0, "decay_input": true, "v_threshold": 0.5, "v_reset": 0.0,
   "detach_reset": false, "surrogate": "ATan", "output_shape": [2, 6, 6]},
  {"name": "2", "type": "conv2d", "weight": "2.weight", "bias": null, "in_channels": 2, "out_channels": 3,
   "kernel_size": [3, 3], "stride": [1, 1], "padding": [2, 2], "dilation": [2, 2], "groups": 1, "output_shape": [3, 6, 6]},
  {"name": "3", "type": "avg_pool2d", "kernel_size": [2, 2], "stride": [2, 2], "padding": [1, 1],
   "count_include_pad": true, "output_shape": [3, 4, 4]},
  {"name": "4", "type": "plif", "decay": "4.decay", "decay_input": false, "v_threshold": 0.25, "v_reset": null,
   "detach_reset": true, "surrogate": "Sigmoid", "output_shape": [3, 4, 4]},
  {"name": "5", "type": "max_pool2d", "kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0], "output_shape": [3, 2, 2]},
  {"name": "6", "type": "flatten", "output_shape": [12]},
  {"name": "7", "type": "linear", "weight": "7.weight", "bias": "7.bias", "in_features": 12, "out_features": 5,
   "output_shape": [5]},
  {"name": "8", "type": "if", "v_threshold": 1.0, "v_reset": 0.0, "detach_reset": false, "surrogate": "Sigmoid",
   "output_shape": [5]}]})";

std::vector<float> dyadic_values(std::size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> d(-8, 12);
  std::vector<float> v(n);
  for (float& x : v) x = float(d(rng)) / 8.0f;
  return v;
}

std::string full_file() {
  std::mt19937 rng(7);
  return model_file_bytes(kFullGraph, {{"0.weight", {2, 1, 3, 3}, dyadic_values(18, rng)},
                                       {"0.bias", {2}, dyadic_values(2, rng)},
                                       {"2.weight", {3, 2, 3, 3}, dyadic_values(54, rng)},
                                       {"4.decay", {1}, {0.25f}},
                                       {"7.weight", {5, 12}, dyadic_values(60, rng)},
                                       {"7.bias", {5}, dyadic_values(5, rng)}});
}

// The layer inputs the full graph does not make: max pooling of real values, a neuron fed spikes, average
// pooling of spikes (padded, padding not counted), and scores read from real values (no neuron at the end).
const char* kMixedGraph = R"({"time_steps": 2, "encoding": "direct", "input_shape": [1, 6, 6], "layers": [
  {"name": "0", "type": "conv2d", "weight": "0.weight", "bias": "0.bias", "in_channels": 1, "out_channels": 2,
   "kernel_size": [3, 3], "stride": [1, 1], "padding": [1, 1], "dilation": [1, 1], "groups": 1, "output_shape": [2, 6, 6]},
  {"name": "1", "type": "max_pool2d", "kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0], "output_shape": [2, 3, 3]},
  {"name": "2", "type": "lif", "tau": 2.0, "decay_input": true, "v_threshold": 0.5, "v_reset": 0.0,
   "detach_reset": false, "surrogate": "ATan", "output_shape": [2, 3, 3]},
  {"name": "3", "type": "if", "v_threshold": 1.0, "v_reset": 0.0, "detach_reset": false, "surrogate": "Sigmoid",
   "output_shape": [2, 3, 3]},
  {"name": "4", "type": "avg_pool2d", "kernel_size": [2, 2], "stride": [1, 1], "padding": [1, 1],
   "count_include_pad": false, "output_shape": [2, 4, 4]},
  {"name": "5", "type": "flatten", "output_shape": [32]},
  {"name": "6", "type": "linear", "weight": "6.weight", "bias": "6.bias", "in_features": 32, "out_features": 4,
   "output_shape": [4]}]})";

std::string mixed_file() {
  std::mt19937 rng(8);
  return model_file_bytes(kMixedGraph, {{"0.weight", {2, 1, 3, 3}, dyadic_values(18, rng)},
                                        {"0.bias", {2}, dyadic_values(2, rng)},
                                        {"6.weight", {4, 32}, dyadic_values(128, rng)},
                                        {"6.bias", {4}, dyadic_values(4, rng)}});
}

void test_full_network() {
  const std::string file = full_file();
  Model model = Model::from_buffer(file.data(), file.size(), "full");
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> x(5 * 36);
  for (float& v : x) v = u(rng);
  InferenceResult r = model.run(x.data(), 5);
  CHECK(r.scores.size() == 25);
  bool counts_ok = true;
  for (float s : r.scores) counts_ok = counts_ok && s >= 0 && s <= 3 && s == float(int(s));
  CHECK(counts_ok);
  // A batch is the same as its samples one by one.
  for (int b = 0; b < 5; ++b) {
    InferenceResult one = model.run(x.data() + b * 36, 1);
    CHECK(std::vector<float>(r.scores.begin() + b * 5, r.scores.begin() + b * 5 + 5) == one.scores);
  }
  const std::vector<LayerReport>& rep = model.reports();
  CHECK(!rep[0].spike_input && rep[0].dense_macs > 0 && rep[0].synaptic_ops == 0);
  CHECK(rep[2].spike_input && rep[2].dense_macs == 0);
  CHECK(rep[7].spike_input);
  CHECK(rep[1].neuron_steps == 10 * 3 * 72 && rep[1].spikes > 0);  // 5 samples, twice
  CHECK(model.summary().find("spike input") != std::string::npos);
  CHECK(model.workspace_bytes(5) > 0);
}

void test_poisson_encoding() {
  std::string graph = kTinyGraph;
  graph.replace(graph.find("direct"), 6, "poisson");
  const std::string file = model_file_bytes(graph, {{"fc.weight", {2, 3}, {1, 0, 0, 0, 1, 0}}, {"fc.bias", {2}, {0, 0}}});
  Model model = Model::from_buffer(file.data(), file.size(), "poisson");
  CHECK(model.encoding() == InputEncoding::kPoisson);
  // x = 1 always spikes (u < 1), x = 0 (almost) never: neuron 0 fires every step, neuron 1 (input 0) never.
  const std::vector<float> x = {1, 0, 0};
  InferenceResult r = model.run(x.data(), 1, 42);
  CHECK(r.scores == std::vector<float>({4, 0}));
  CHECK(model.reports()[0].synaptic_ops == 4 * 2);  // the spike GEMM: 4 input spikes x 2 outputs
  // p = 0.5: about half of the steps over many samples, and the same seed gives the same spikes.
  std::vector<float> half(3 * 4000, 0.5f);
  InferenceResult a = model.run(half.data(), 4000, 1), b = model.run(half.data(), 4000, 1);
  CHECK(a.scores == b.scores);
  double total = 0;
  for (int i = 0; i < 4000; ++i) total += a.scores[std::size_t(2 * i)];
  CHECK(std::abs(total / (4000.0 * 4) - 0.5) < 0.02);
}

// The runtime on a GPU against the CPU: with dyadic weights and inputs every sum is exact in any order, so
// scores and reports must be identical. Without CUDA (or without a GPU) Model::to must say so.
void expect_same_on_gpu(const std::string& file, const std::vector<float>& x, int64_t batch, uint64_t seed) {
  Model cpu = Model::from_buffer(file.data(), file.size(), "cpu");
  Model gpu = Model::from_buffer(file.data(), file.size(), "gpu");
  gpu.to(Device::kCUDA);
  CHECK(gpu.device() == Device::kCUDA && gpu.device_index() == 0);
  // One sample first, then the batch (the device buffers grow), then the batch again (they are reused).
  for (int64_t n : {int64_t(1), batch, batch}) {
    const InferenceResult a = cpu.run(x.data(), n, seed), b = gpu.run(x.data(), n, seed);
    CHECK(a.scores == b.scores);
    CHECK(a.predictions == b.predictions);
  }
  for (std::size_t i = 0; i < cpu.reports().size(); ++i) {
    const LayerReport &p = cpu.reports()[i], &q = gpu.reports()[i];
    CHECK(p.synaptic_ops == q.synaptic_ops && p.dense_macs == q.dense_macs);
    CHECK(p.spikes == q.spikes && p.neuron_steps == q.neuron_steps);
  }
  gpu.to(Device::kCPU);
  CHECK(gpu.device() == Device::kCPU);
}

void test_cuda_runtime() {
  const std::string file = full_file();
  Model model = Model::from_buffer(file.data(), file.size(), "full");
  CHECK(model.device() == Device::kCPU);
  if (!build_info().cuda) {
    EXPECT_ERROR(model.to(Device::kCUDA), "built without CUDA");
    CHECK(model.device() == Device::kCPU);
    return;
  }
  try {
    model.to(Device::kCUDA);
  } catch (const DeviceError& e) {
    std::printf("skipped the runtime's CUDA tests: %s\n", e.what());
    return;
  }
  bool threw = false;
  try {
    model.to(Device::kCUDA, 4096);
  } catch (const DeviceError&) {
    threw = true;
  }
  CHECK(threw);
  CHECK(model.device() == Device::kCUDA && model.device_index() == 0);  // a failed move keeps the model where it was
  std::mt19937 rng(11);
  std::vector<float> x(64 * 36);
  std::uniform_int_distribution<int> d(0, 16);
  for (float& v : x) v = float(d(rng)) / 16.0f;
  expect_same_on_gpu(file, x, 64, 0);
  expect_same_on_gpu(tiny_file(), {1, 0, 0, 0.5f, 1, 0}, 2, 0);
  expect_same_on_gpu(mixed_file(), x, 64, 0);
  std::string graph = kTinyGraph;
  graph.replace(graph.find("direct"), 6, "poisson");
  const std::string poisson = model_file_bytes(graph, {{"fc.weight", {2, 3}, {1, 0, 0, 0, 1, 0}}, {"fc.bias", {2}, {0, 0}}});
  std::vector<float> half(3 * 500, 0.5f);
  expect_same_on_gpu(poisson, half, 500, 9);  // the same Poisson draws on both
}

std::string replace_once(std::string s, const std::string& from, const std::string& to) {
  const std::size_t at = s.find(from);
  if (at == std::string::npos) {
    std::printf("test setup: '%s' not found\n", from.c_str());
    std::abort();
  }
  return s.replace(at, from.size(), to);
}

void test_errors() {
  const std::vector<NamedTensor> tensors = {{"fc.weight", {2, 3}, {1, 0, 0, 0, 0.5f, 0}}, {"fc.bias", {2}, {0, 0.25f}}};
  auto load = [](const std::string& bytes) { Model::from_buffer(bytes.data(), bytes.size(), "bad.spikeops"); };
  // Loads the tiny model with one edit of its graph.
  auto load_edited = [&](const std::string& from, const std::string& to) {
    load(model_file_bytes(replace_once(kTinyGraph, from, to), tensors));
  };
  const std::string good = tiny_file();
  EXPECT_ERROR(load(good.substr(0, 5)), "too short");
  EXPECT_ERROR(load(good.substr(0, 40)), "truncated");
  EXPECT_ERROR(load(good.substr(0, good.size() - 4)), "outside the");
  EXPECT_ERROR(load(good + "xxxx"), "the tensors cover");
  EXPECT_ERROR(load(model_file_bytes(kTinyGraph, tensors, "2")), "unsupported format_version \"2\"");
  EXPECT_ERROR(load(replace_once(good, "\"spikeops\"", "\"pytorch\" ")), "not a spikeops model file");
  EXPECT_ERROR(load_edited("\"in_features\": 3", "\"in_features\": 4"),
               "in_features 4 does not match the input [3]");
  EXPECT_ERROR(load(model_file_bytes(kTinyGraph, {{"fc.weight", {3, 2}, {1, 0, 0, 0, 0.5f, 0}}, tensors[1]})),
               "tensor 'fc.weight' has shape [3, 2], expected [2, 3]");
  EXPECT_ERROR(load(model_file_bytes(kTinyGraph, {tensors[0]})), "names tensor 'fc.bias', which the file lacks");
  EXPECT_ERROR(load_edited("\"if\"", "\"relu\""),
               "layer type 'relu' is not supported");
  EXPECT_ERROR(load_edited("\"output_shape\": [2]}]", "\"output_shape\": [3]}]"),
               "output_shape [3] disagrees");
  EXPECT_ERROR(load_edited("\"time_steps\": 4", "\"time_steps\": 0"),
               "time_steps must be an integer in [1, 65536]");
  EXPECT_ERROR(load_edited("\"direct\"", "\"latency\""),
               "encoding \"latency\" is not supported");
  EXPECT_ERROR(load_edited("\"v_threshold\": 1.0", "\"v_threshold\": 1e99"),
               "'v_threshold' must be a finite number");
  EXPECT_ERROR(load_edited("\"type\": \"if\"", "\"type\": \"lif\", \"tau\": 0.5, \"decay_input\": true"),
               "'tau' must be a finite number > 1");
  EXPECT_ERROR(load_edited("\"layers\": [", "\"layers\": [[], "),
               "graph.layers[0] must be an object");
  EXPECT_ERROR(load_edited("}]}", "}]"), "invalid JSON");
  EXPECT_ERROR(Model::load("/nonexistent/model.spikeops"), "cannot open '/nonexistent/model.spikeops'");
  EXPECT_ERROR(Model::from_buffer(nullptr, 3), "data is null");
}

// Damaged files: each must load and run, or throw spikeops::Error; anything else (a crash, another
// exception, a sanitizer report) fails the test.
void fuzz_loader(int mutations) {
  const std::vector<std::string> seeds = {tiny_file(), full_file()};
  std::mt19937_64 rng(2026);
  int loaded = 0, rejected = 0, ran = 0;
  std::vector<float> input(2 * 36, 0.75f);
  for (int i = 0; i < mutations; ++i) {
    std::string f = seeds[std::size_t(i) % seeds.size()];
    const std::size_t header_end = 8 + std::size_t(uint8_t(f[0])) + 256 * std::size_t(uint8_t(f[1]));
    auto pos = [&](bool header_only) {
      const std::size_t n = header_only ? std::min(header_end, f.size()) : f.size();
      return std::size_t(rng() % n);
    };
    switch (rng() % 5) {
      case 0:  // flip bits of 1 to 4 bytes anywhere
        for (int k = 0, n = 1 + int(rng() % 4); k < n; ++k) f[pos(false)] ^= char(1 + rng() % 255);
        break;
      case 1:  // truncate
        f.resize(std::size_t(rng() % f.size()));
        break;
      case 2: {  // change a digit of the header (shapes, offsets, sizes, hyper-parameters)
        for (int tries = 0; tries < 64; ++tries) {
          const std::size_t p = pos(true);
          if (f[p] >= '0' && f[p] <= '9') {
            f[p] = char('0' + rng() % 10);
            break;
          }
        }
        break;
      }
      case 3:  // delete or duplicate a header byte (the JSON shifts against the length prefix)
        if (rng() % 2) {
          f.erase(pos(true), 1);
        } else {
          const std::size_t p = pos(true);
          f.insert(p, 1, f[p]);
        }
        break;
      default: {  // replace a header byte with a JSON-significant character
        const char specials[] = "{}[]\":,-.e0123456789 \\u";
        f[pos(true)] = specials[rng() % (sizeof(specials) - 1)];
        break;
      }
    }
    try {
      Model model = Model::from_buffer(f.data(), f.size(), "mutant");
      ++loaded;
      const int64_t batch = std::min<int64_t>(2, int64_t(input.size()) / std::max<int64_t>(1, model.input_numel()));
      if (batch >= 1 && model.workspace_bytes(batch) < (int64_t(64) << 20)) {
        model.run(input.data(), batch, uint64_t(i));
        ++ran;
      }
    } catch (const std::invalid_argument&) {
      ++rejected;
    } catch (const std::exception& e) {
      ++spikeops_test::g_failures;
      std::printf("FAILED fuzz mutation %d: unexpected exception %s\n", i, e.what());
    }
  }
  ++spikeops_test::g_checks;
  std::printf("fuzz: %d damaged files: %d rejected with spikeops::Error, %d loaded (%d ran)\n", mutations,
              rejected, loaded, ran);
}

}  // namespace

int main(int argc, char** argv) {
  const int mutations = argc > 1 ? std::atoi(argv[1]) : 20000;
  test_tiny_network();
  test_full_network();
  test_poisson_encoding();
  test_cuda_runtime();
  test_errors();
  fuzz_loader(mutations);
  std::printf("spikeops model tests: %d checks, %d failed\n", spikeops_test::g_checks, spikeops_test::g_failures);
  return spikeops_test::g_failures == 0 ? 0 : 1;
}
