// The model file loader (Model::load, Model::from_buffer): its error messages, and a fuzz loop over damaged
// files (byte flips, truncations, edited numbers) that must only ever produce spikeops::Error, never a crash.
// Built with -DSPIKEOPS_SANITIZE=address,undefined in CI so that an out-of-bounds read fails the run.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "spikeops/spikeops.hpp"
#include "test_models.hpp"
#include "test_util.hpp"

using namespace spikeops;
using namespace spikeops_test;

namespace {

std::string replace_once(std::string s, const std::string& from, const std::string& to) {
  const std::size_t at = s.find(from);
  if (at == std::string::npos) throw std::logic_error("test setup: '" + from + "' not found");
  return s.replace(at, from.size(), to);
}

void load(const std::string& bytes) { Model::from_buffer(bytes.data(), bytes.size(), "bad.spikeops"); }

// Loads the tiny model with one edit of its graph.
void load_edited(const std::string& from, const std::string& to) {
  load(model_file_bytes(replace_once(kTinyGraph, from, to), tiny_tensors()));
}

TEST(ModelFile, RejectsDamagedContainer) {
  const std::string good = tiny_file();
  EXPECT_ERROR(load(good.substr(0, 5)), "too short");
  EXPECT_ERROR(load(good.substr(0, 40)), "truncated");
  EXPECT_ERROR(load(good.substr(0, good.size() - 4)), "outside the");
  EXPECT_ERROR(load(good + "xxxx"), "the tensors cover");
  EXPECT_ERROR(load(model_file_bytes(kTinyGraph, tiny_tensors(), "2")), "unsupported format_version \"2\"");
  EXPECT_ERROR(load(replace_once(good, "\"spikeops\"", "\"pytorch\" ")), "not a spikeops model file");
}

TEST(ModelFile, RejectsTensorsTheGraphDoesNotDescribe) {
  const std::vector<NamedTensor> tensors = tiny_tensors();
  EXPECT_ERROR(load(model_file_bytes(kTinyGraph, {{"fc.weight", {3, 2}, {1, 0, 0, 0, 0.5f, 0}}, tensors[1]})),
               "tensor 'fc.weight' has shape [3, 2], expected [2, 3]");
  EXPECT_ERROR(load(model_file_bytes(kTinyGraph, {tensors[0]})), "names tensor 'fc.bias', which the file lacks");
}

TEST(ModelFile, RejectsBadGraph) {
  EXPECT_ERROR(load_edited("\"in_features\": 3", "\"in_features\": 4"), "in_features 4 does not match the input [3]");
  EXPECT_ERROR(load_edited("\"if\"", "\"relu\""), "layer type 'relu' is not supported");
  EXPECT_ERROR(load_edited("\"output_shape\": [2]}]", "\"output_shape\": [3]}]"), "output_shape [3] disagrees");
  EXPECT_ERROR(load_edited("\"time_steps\": 4", "\"time_steps\": 0"), "time_steps must be an integer in [1, 65536]");
  EXPECT_ERROR(load_edited("\"direct\"", "\"latency\""), "encoding \"latency\" is not supported");
  EXPECT_ERROR(load_edited("\"v_threshold\": 1.0", "\"v_threshold\": 1e99"), "'v_threshold' must be a finite number");
  EXPECT_ERROR(load_edited("\"type\": \"if\"", "\"type\": \"lif\", \"tau\": 0.5, \"decay_input\": true"),
               "'tau' must be a finite number > 1");
  EXPECT_ERROR(load_edited("\"layers\": [", "\"layers\": [[], "), "graph.layers[0] must be an object");
  EXPECT_ERROR(load_edited("}]}", "}]"), "invalid JSON");
}

// Loads the one-neuron network with the neuron's `fields` edited once.
void load_neuron_edited(const std::string& fields, const std::string& from, const std::string& to,
                        const std::vector<NamedTensor>& tensors) {
  load(model_file_bytes(neuron_graph(replace_once(fields, from, to)), tensors));
}

TEST(ModelFile, RejectsBadNeuronFields) {
  const std::vector<NamedTensor> izh = {identity_weight()};
  const std::vector<NamedTensor> klif = {identity_weight(), {"sn.k", {1}, {0.75f}}};
  const std::string where = "bad.spikeops: graph.layers[1] ('sn', neuron): ";
  auto izh_edit = [&](const std::string& from, const std::string& to) {
    load_neuron_edited(kIzhikevichFields, from, to, izh);
  };
  auto klif_edit = [&](const std::string& from, const std::string& to, const std::vector<NamedTensor>& t) {
    load_neuron_edited(kKLIFFields, from, to, t);
  };
  EXPECT_NO_THROW(load(izhikevich_file()));
  EXPECT_NO_THROW(load(klif_file()));
  EXPECT_ERROR(izh_edit("\"Izhikevich\"", "\"Hodgkin\""),
               where + "field 'model' \"Hodgkin\" is not a neuron model of this runtime (IF, LIF, ParametricLIF");
  EXPECT_ERROR(izh_edit("\"model\": \"Izhikevich\", ", ""), where + "field 'model' is missing");
  EXPECT_ERROR(izh_edit("\"tau\": 2.0", "\"tau\": 1.0"), where + "field 'tau' must be a finite number > 1");
  EXPECT_ERROR(izh_edit("\"decay_input\": true", "\"decay_input\": 1"), where + "field 'decay_input' must be true or false");
  EXPECT_ERROR(izh_edit("\"v_reset\": 0.0", "\"v_reset\": \"soft\""), where + "field 'v_reset' must be a finite number");
  EXPECT_ERROR(izh_edit("\"b\": 0.25", "\"c\": 0.25"),
               where + "field 'extra' lacks 'b': expected an object of the numbers v_c, a0, v_rest, tau_w, a, b");
  EXPECT_ERROR(izh_edit(", \"b\": 0.25", ""),
               where + "field 'extra' must be an object of the numbers v_c, a0, v_rest, tau_w, a, b");
  EXPECT_ERROR(izh_edit("\"a\": 0.5", "\"a\": 1e99"), where + "field 'extra': 'a' must be a finite number");
  EXPECT_ERROR(izh_edit("\"a\": 0.5", "\"a\": null"), where + "field 'extra': 'a' must be a finite number");
  EXPECT_ERROR(izh_edit("\"a0\": 1.0", "\"a0\": -1.0"), where + "neuron params: Izhikevich a0");
  EXPECT_ERROR(izh_edit("{\"v_c\": 0.8, \"a0\": 1.0, \"v_rest\": -0.1, \"tau_w\": 2.0, \"a\": 0.5, \"b\": 0.25}",
                       "[0.8, 1.0, -0.1, 2.0, 0.5, 0.25]"),
               where + "field 'extra' must be an object");
  EXPECT_ERROR(izh_edit("[0.0, -0.125]", "[0.0]"),
               where + "field 'state_init' must be a list of 2 finite numbers (Izhikevich's states, V first)");
  EXPECT_ERROR(izh_edit("[0.0, -0.125]", "[0.0, 1e39]"), where + "field 'state_init' must be a list of 2");
  EXPECT_ERROR(izh_edit("\"state_init\"", "\"learnable\": \"fc.weight\", \"state_init\""),
               where + "field 'learnable' must be absent: Izhikevich has no learnable scalars");
  EXPECT_ERROR(klif_edit(", \"learnable\": \"sn.k\"", "", {identity_weight()}), where + "field 'learnable' is missing");
  EXPECT_ERROR(klif_edit("\"sn.k\"", "\"sn.k\"", {identity_weight(), {"sn.k", {2}, {0.75f, 1.0f}}}),
               where + "tensor 'sn.k' has shape [2], expected [1]");
  EXPECT_ERROR(klif_edit("\"sn.k\"", "\"sn.k\"", {identity_weight(), {"sn.k", {1}, {INFINITY}}}),
               where + "tensor 'sn.k' must hold finite numbers");
  EXPECT_ERROR(klif_edit("\"scale_reset\": 1.0", "\"scale_reset\": 0.5", klif), "scale_reset must be 0 or 1");
  EXPECT_ERROR(klif_edit("\"extra\": {\"scale_reset\": 1.0}", "\"extra\": {}", klif),
               where + "field 'extra' must be an object of the numbers scale_reset");
  const std::string clif = R"("model": "ComplementaryLIF", "v_threshold": 1.0, "v_reset": null, "tau": 2.0,
   "decay_input": false, "detach_reset": false, "surrogate": "Rect", "extra": {}, "state_init": [0.0, 0.0])";
  EXPECT_NO_THROW(load(model_file_bytes(neuron_graph(clif), izh)));
  EXPECT_ERROR(load_neuron_edited(clif, "\"v_reset\": null", "\"v_reset\": 0.0", izh),
               where + "neuron params: ComplementaryLIF has only the soft reset");
  EXPECT_ERROR(load_neuron_edited(clif, "\"extra\": {}", "\"extra\": {\"tau_m\": 2.0}", izh),
               where + "field 'extra' must be {} (ComplementaryLIF has no extra parameters)");
}

TEST(ModelFile, RejectsMissingSource) {
  EXPECT_ERROR(Model::load("/nonexistent/model.spikeops"), "cannot open '/nonexistent/model.spikeops'");
  EXPECT_ERROR(Model::from_buffer(nullptr, 3), "data is null");
  const std::string dir = ::testing::TempDir();
  EXPECT_ERROR(Model::load(dir), "'" + dir + "' is a directory, expected a model file");
}

// How many damaged files the fuzz test tries: 20000 (CI), or SPIKEOPS_FUZZ_MUTATIONS for a quick local run.
int fuzz_mutations() {
  const char* env = std::getenv("SPIKEOPS_FUZZ_MUTATIONS");
  if (env == nullptr) return 20000;
  char* end = nullptr;
  const long n = std::strtol(env, &end, 10);
  if (end == env || *end != '\0' || n < 1 || n > 100000000) {
    throw std::invalid_argument(std::string("SPIKEOPS_FUZZ_MUTATIONS must be a positive integer, got '") + env + "'");
  }
  return static_cast<int>(n);
}

// Damaged files: each must load and run, or throw spikeops::Error; anything else (a crash, another
// exception, a sanitizer report) fails the test.
TEST(ModelFile, FuzzDamagedFilesOnlyThrowError) {
  const int mutations = fuzz_mutations();
  const std::vector<std::string> seeds = {tiny_file(), full_file(), zoo_file()};
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
      ADD_FAILURE() << "fuzz mutation " << i << ": unexpected exception " << e.what();
    }
  }
  std::printf("fuzz: %d damaged files: %d rejected with spikeops::Error, %d loaded (%d ran)\n", mutations, rejected,
              loaded, ran);
}

}  // namespace
