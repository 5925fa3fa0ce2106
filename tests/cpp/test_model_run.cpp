// The model runtime (spikeops::Model) through the public header: a network small enough to check by hand,
// every layer type run once, Poisson input, and the runtime on a GPU (or the CUDA simulator) against the CPU.
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "spikeops/spikeops.hpp"
#include "test_models.hpp"
#include "test_util.hpp"

using namespace spikeops;
using namespace spikeops_test;

namespace {

TEST(ModelRun, TinyNetworkByHand) {
  const std::string file = tiny_file();
  Model model = Model::from_buffer(file.data(), file.size(), "tiny");
  EXPECT_EQ(model.time_steps(), 4);
  EXPECT_EQ(model.num_outputs(), 2);
  EXPECT_EQ(model.input_numel(), 3);
  // sample 0: currents (1, 0.25): neuron 0 fires every step; neuron 1 charges 0.25 per step, fires at step 4.
  // sample 1: currents (0.5, 0.25 + 0.5*1 = 0.75): neuron 0 fires at steps 2 and 4; neuron 1 at 2 and 4 (1.5 -> 1,
  //           then 0.75, 1.5).
  const std::vector<float> x = {1, 0, 0, 0.5f, 1, 0};
  InferenceResult r = model.run(x.data(), 2);
  EXPECT_TRUE(r.batch == 2 && r.num_outputs == 2);
  EXPECT_EQ(r.scores, std::vector<float>({4, 1, 2, 2}));
  EXPECT_EQ(r.predictions, std::vector<int64_t>({0, 0}));  // the first index on ties, as torch.argmax
  const std::vector<LayerReport>& rep = model.reports();
  ASSERT_EQ(rep.size(), 2u);
  EXPECT_EQ(rep[0].dense_macs, 2 * 3 * 2);  // direct input: the linear layer runs once per sample, not per step
  EXPECT_TRUE(rep[1].spikes == 9 && rep[1].neuron_steps == 4 * 2 * 2);
  model.reset_reports();
  EXPECT_EQ(model.reports()[1].spikes, 0);
  EXPECT_TRUE(model.run(x.data(), 0).scores.empty());
}

TEST(ModelRun, RunRejectsBadArguments) {
  const std::string file = tiny_file();
  Model model = Model::from_buffer(file.data(), file.size(), "tiny");
  const std::vector<float> x = {1, 0, 0, 0.5f, 1, 0};
  EXPECT_ERROR(model.run(nullptr, 1), "input is null");
  EXPECT_ERROR(model.run(x.data(), -1), "batch must be >= 0");
}

TEST(ModelRun, FullNetworkBatchMatchesSamples) {
  const std::string file = full_file();
  Model model = Model::from_buffer(file.data(), file.size(), "full");
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> x(5 * 36);
  for (float& v : x) v = u(rng);
  InferenceResult r = model.run(x.data(), 5);
  ASSERT_EQ(r.scores.size(), 25u);
  bool counts_ok = true;
  for (float s : r.scores) counts_ok = counts_ok && s >= 0 && s <= 3 && s == float(int(s));
  EXPECT_TRUE(counts_ok);
  // A batch is the same as its samples one by one.
  for (int b = 0; b < 5; ++b) {
    InferenceResult one = model.run(x.data() + b * 36, 1);
    EXPECT_EQ(std::vector<float>(r.scores.begin() + b * 5, r.scores.begin() + b * 5 + 5), one.scores) << "sample " << b;
  }
  const std::vector<LayerReport>& rep = model.reports();
  ASSERT_EQ(rep.size(), 9u);
  EXPECT_TRUE(!rep[0].spike_input && rep[0].dense_macs > 0 && rep[0].synaptic_ops == 0);
  EXPECT_TRUE(rep[2].spike_input && rep[2].dense_macs == 0);
  EXPECT_TRUE(rep[7].spike_input);
  EXPECT_TRUE(rep[1].neuron_steps == 10 * 3 * 72 && rep[1].spikes > 0);  // 5 samples, twice
  EXPECT_NE(model.summary().find("spike input"), std::string::npos);
  EXPECT_GT(model.workspace_bytes(5), 0);
}

// A value each extra parameter accepts (KLIF's scale_reset is a flag; the rest take 0.5).
float valid_extra(const std::string& name) { return name == "scale_reset" ? 1.0f : 0.5f; }

std::vector<NeuronKind> all_neuron_kinds() {
#define SPIKEOPS_KIND_LIST(ID, NAME) NeuronKind::k##NAME,
  return {SPIKEOPS_FOR_EACH_NEURON_KIND(SPIKEOPS_KIND_LIST)};
#undef SPIKEOPS_KIND_LIST
}

// One model in the generic neuron form (neuron_graph: x [4] -> identity -> the neuron, T = 6), with the
// parameters, learnable scalars (0.625) and initial states (0.0625 (s + 1)) it also gives the kernel in `p`,
// `learnable` and `init`.
struct NeuronCase {
  NeuronParams p;
  std::vector<float> learnable, init;
  std::string file;
};

NeuronCase neuron_case(NeuronKind kind) {
  const NeuronInfo info = neuron_info(kind);
  NeuronCase c;
  NeuronParams& p = c.p;
  p.kind = kind;
  p.v_threshold = 0.75f;
  // ComplementaryLIF's only reset is the soft one; GatedLIF has none (V' = H), given as v_reset = None.
  p.hard_reset = kind != NeuronKind::kComplementaryLIF && kind != NeuronKind::kGatedLIF;
  p.v_reset = p.hard_reset ? -0.125f : 0.0f;
  p.tau = 3.0;
  p.decay_input = false;
  std::string extra, init;
  for (int i = 0; i < info.extra; ++i) {
    p.extra[std::size_t(i)] = valid_extra(info.extra_names[i]);
    extra += std::string(i ? ", " : "") + "\"" + info.extra_names[i] + "\": " + std::to_string(p.extra[std::size_t(i)]);
  }
  for (int s = 0; s < info.states; ++s) {
    c.init.push_back(0.0625f * float(s + 1));
    init += std::string(s ? ", " : "") + std::to_string(c.init.back());
  }
  c.learnable.assign(std::size_t(info.learnable), 0.625f);
  std::string fields = std::string("\"model\": \"") + info.name + "\", \"v_threshold\": 0.75, \"v_reset\": " +
                       (p.hard_reset ? "-0.125" : "null") +
                       ", \"tau\": 3.0, \"decay_input\": false, \"detach_reset\": false, \"surrogate\": \"Sigmoid\", "
                       "\"extra\": {" + extra + "}, \"state_init\": [" + init + "]";
  std::vector<NamedTensor> tensors = {identity_weight()};
  if (info.learnable > 0) {
    fields += ", \"learnable\": \"sn.learnable\"";
    tensors.push_back({"sn.learnable", {info.learnable}, c.learnable});
  }
  c.file = model_file_bytes(neuron_graph(fields), tensors);
  return c;
}

// Currents for `n` samples of 4 features, on a grid of 1/8.
std::vector<float> neuron_inputs(int64_t n) {
  std::vector<float> x(static_cast<std::size_t>(n * 4));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = 0.125f * float(i % 7) + 0.25f;
  return x;
}

// Every model in the generic neuron form runs the fused kernel with the file's parameters, learnable scalars and
// initial states: its spike counts equal neuron_multistep_forward's on the same input.
TEST(ModelRun, EveryNeuronModelMatchesTheKernel) {
  const int64_t T = 6, batch = 3, N = batch * 4;
  const std::vector<float> x = neuron_inputs(batch);
  for (NeuronKind kind : all_neuron_kinds()) {
    const NeuronInfo info = neuron_info(kind);
    NeuronCase c = neuron_case(kind);
    if (!info.spiking) {  // a readout's output is its potential: not what a neuron layer of the runtime outputs
      EXPECT_ERROR(Model::from_buffer(c.file.data(), c.file.size(), info.name),
                   std::string("\"") + info.name + "\" outputs its membrane potential, not spikes");
      continue;
    }
    Model model = Model::from_buffer(c.file.data(), c.file.size(), info.name);
    const InferenceResult r = model.run(x.data(), batch);

    std::vector<float> x_seq, state(std::size_t(info.states * N)), state_final(state.size());
    for (int64_t t = 0; t < T; ++t) x_seq.insert(x_seq.end(), x.begin(), x.end());
    for (int s = 0; s < info.states; ++s) std::fill_n(state.begin() + s * N, N, c.init[std::size_t(s)]);
    std::vector<uint8_t> spikes(std::size_t(T * N));
    NeuronForwardArgs args;
    args.x_seq = make_tensor_view(x_seq.data(), DType::kFloat32, {T, N});
    args.state_init = make_tensor_view(state.data(), DType::kFloat32, {info.states, N});
    if (info.learnable > 0) args.learnable = make_tensor_view(c.learnable.data(), DType::kFloat32, {info.learnable});
    args.spike_seq = make_tensor_view(spikes.data(), DType::kUInt8, {T, N});
    args.state_final = make_tensor_view(state_final.data(), DType::kFloat32, {info.states, N});
    neuron_multistep_forward(c.p, args);
    std::vector<float> counts(std::size_t(N), 0.0f);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t i = 0; i < N; ++i) counts[std::size_t(i)] += float(spikes[std::size_t(t * N + i)]);
    }
    EXPECT_EQ(r.scores, counts) << info.name;
    float total = 0.0f;
    for (float n : counts) total += n;
    EXPECT_GT(total, 0.0f) << info.name << ": no spike, the comparison would be weak";
    EXPECT_NE(model.summary().find(std::string("neuron (") + info.name + ")"), std::string::npos) << info.name;
  }
}

// The initial states come from the file: other values of state_init give other spikes.
TEST(ModelRun, NeuronStartsAtStateInit) {
  const std::vector<float> x(4, 0.25f);
  std::string fields = kIzhikevichFields;
  const std::string original = izhikevich_file();
  Model a = Model::from_buffer(original.data(), original.size(), "a");
  const std::string from = "\"state_init\": [0.0, -0.125]";
  fields.replace(fields.find(from), from.size(), "\"state_init\": [0.75, -0.125]");
  const std::string file = model_file_bytes(neuron_graph(fields), {identity_weight()});
  Model b = Model::from_buffer(file.data(), file.size(), "b");
  const std::vector<float> sa = a.run(x.data(), 1).scores, sb = b.run(x.data(), 1).scores;
  EXPECT_GT(sb[0], sa[0]);  // starting closer to the threshold, the neuron fires more in 6 steps
}

// x = 1 always spikes (u < 1), x = 0 (almost) never: neuron 0 fires every step, neuron 1 (input 0) never.
TEST(ModelRun, PoissonEncodingOfZeroAndOne) {
  const std::string file = poisson_file();
  Model model = Model::from_buffer(file.data(), file.size(), "poisson");
  EXPECT_EQ(model.encoding(), InputEncoding::kPoisson);
  const std::vector<float> x = {1, 0, 0};
  InferenceResult r = model.run(x.data(), 1, 42);
  EXPECT_EQ(r.scores, std::vector<float>({4, 0}));
  EXPECT_EQ(model.reports()[0].synaptic_ops, 4 * 2);  // the spike GEMM: 4 input spikes x 2 outputs
}

// p = 0.5: about half of the steps over many samples, and the same seed gives the same spikes.
TEST(ModelRun, PoissonEncodingIsSeededAndUnbiased) {
  const std::string file = poisson_file();
  Model model = Model::from_buffer(file.data(), file.size(), "poisson");
  std::vector<float> half(3 * 4000, 0.5f);
  InferenceResult a = model.run(half.data(), 4000, 1), b = model.run(half.data(), 4000, 1);
  EXPECT_EQ(a.scores, b.scores);
  double total = 0;
  for (int i = 0; i < 4000; ++i) total += a.scores[std::size_t(2 * i)];
  EXPECT_LT(std::abs(total / (4000.0 * 4) - 0.5), 0.02);
}

TEST(ModelRun, LoadsOnCpu) {
  const std::string file = full_file();
  Model model = Model::from_buffer(file.data(), file.size(), "full");
  EXPECT_EQ(model.device(), Device::kCPU);
}

TEST(ModelRun, CudaNeedsCudaBuild) {
  if (build_info().cuda) GTEST_SKIP() << "this build has CUDA";
  const std::string file = full_file();
  Model model = Model::from_buffer(file.data(), file.size(), "full");
  EXPECT_ERROR(model.to(Device::kCUDA), "built without CUDA");
  EXPECT_EQ(model.device(), Device::kCPU);
}

// The runtime on a GPU (or the CUDA simulator): skipped in a build without CUDA, or where no GPU answers.
class ModelRunCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!build_info().cuda) GTEST_SKIP() << "built without CUDA";
    const std::string file = full_file();
    Model model = Model::from_buffer(file.data(), file.size(), "full");
    try {
      model.to(Device::kCUDA);
    } catch (const DeviceError& e) {
      GTEST_SKIP() << "no GPU for the runtime: " << e.what();
    }
  }
};

TEST_F(ModelRunCuda, FailedMoveKeepsDevice) {
  const std::string file = full_file();
  Model model = Model::from_buffer(file.data(), file.size(), "full");
  model.to(Device::kCUDA);
  EXPECT_THROW(model.to(Device::kCUDA, 4096), DeviceError);
  EXPECT_TRUE(model.device() == Device::kCUDA && model.device_index() == 0);  // a failed move keeps the model where it was
}

// The runtime on the GPU against the CPU: with dyadic weights and inputs every sum is exact in any order, so
// scores and reports must be identical.
void expect_same_on_gpu(const std::string& file, const std::vector<float>& x, int64_t batch, uint64_t seed) {
  Model cpu = Model::from_buffer(file.data(), file.size(), "cpu");
  Model gpu = Model::from_buffer(file.data(), file.size(), "gpu");
  gpu.to(Device::kCUDA);
  EXPECT_TRUE(gpu.device() == Device::kCUDA && gpu.device_index() == 0);
  // One sample first, then the batch (the device buffers grow), then the batch again (they are reused).
  for (int64_t n : {int64_t(1), batch, batch}) {
    const InferenceResult a = cpu.run(x.data(), n, seed), b = gpu.run(x.data(), n, seed);
    EXPECT_EQ(a.scores, b.scores) << "batch " << n;
    EXPECT_EQ(a.predictions, b.predictions) << "batch " << n;
  }
  const std::vector<LayerReport> cpu_reports = cpu.reports(), gpu_reports = gpu.reports();
  ASSERT_EQ(cpu_reports.size(), gpu_reports.size());
  for (std::size_t i = 0; i < cpu_reports.size(); ++i) {
    const LayerReport &p = cpu_reports[i], &q = gpu_reports[i];
    EXPECT_TRUE(p.synaptic_ops == q.synaptic_ops && p.dense_macs == q.dense_macs) << "layer " << i;
    EXPECT_TRUE(p.spikes == q.spikes && p.neuron_steps == q.neuron_steps) << "layer " << i;
  }
  gpu.to(Device::kCPU);
  EXPECT_EQ(gpu.device(), Device::kCPU);
}

// 64 images of 6 x 6 in multiples of 1/16.
std::vector<float> dyadic_images() {
  std::mt19937 rng(11);
  std::vector<float> x(64 * 36);
  std::uniform_int_distribution<int> d(0, 16);
  for (float& v : x) v = float(d(rng)) / 16.0f;
  return x;
}

TEST_F(ModelRunCuda, FullNetworkMatchesCpu) { expect_same_on_gpu(full_file(), dyadic_images(), 64, 0); }

TEST_F(ModelRunCuda, ZooNetworkMatchesCpu) { expect_same_on_gpu(zoo_file(), dyadic_images(), 64 * 9, 0); }

TEST_F(ModelRunCuda, EveryNeuronModelMatchesCpu) {
  for (NeuronKind kind : all_neuron_kinds()) {
    if (!neuron_info(kind).spiking) continue;  // refused by the loader (EveryNeuronModelMatchesTheKernel)
    SCOPED_TRACE(neuron_name(kind));
    expect_same_on_gpu(neuron_case(kind).file, neuron_inputs(16), 16, 0);
  }
}

TEST_F(ModelRunCuda, TinyNetworkMatchesCpu) { expect_same_on_gpu(tiny_file(), {1, 0, 0, 0.5f, 1, 0}, 2, 0); }

TEST_F(ModelRunCuda, MixedNetworkMatchesCpu) { expect_same_on_gpu(mixed_file(), dyadic_images(), 64, 0); }

TEST_F(ModelRunCuda, PoissonDrawsMatchCpu) {
  std::vector<float> half(3 * 500, 0.5f);
  expect_same_on_gpu(poisson_file(), half, 500, 9);  // the same Poisson draws on both
}

}  // namespace
