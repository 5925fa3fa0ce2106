// One spikeops::Model shared by several threads (model.hpp: run/to/reports/reset_reports serialise on the
// model): every concurrent run must give the single-threaded scores bit for bit, and the reports must count
// every run once. Batches of different sizes run at the same time, so a run that used another run's buffers
// (resized under it) would give wrong scores or crash.
#include <atomic>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "spikeops/spikeops.hpp"
#include "test_models.hpp"
#include "test_util.hpp"

using namespace spikeops;
using namespace spikeops_test;

namespace {

constexpr int kThreads = 4;
const int64_t kBatches[] = {1, 7, 64, 300};

struct Counts {
  int64_t synaptic_ops = 0, dense_macs = 0, spikes = 0, neuron_steps = 0;
  bool operator==(const Counts& o) const {
    return synaptic_ops == o.synaptic_ops && dense_macs == o.dense_macs && spikes == o.spikes &&
           neuron_steps == o.neuron_steps;
  }
};

std::vector<Counts> counts_of(const std::vector<LayerReport>& reports) {
  std::vector<Counts> c(reports.size());
  for (std::size_t i = 0; i < reports.size(); ++i) {
    c[i] = {reports[i].synaptic_ops, reports[i].dense_macs, reports[i].spikes, reports[i].neuron_steps};
  }
  return c;
}

// `model` (already where it should run) from kThreads threads, each running every batch size `rounds` times
// in its own order, against the same batches run one at a time on `reference`.
void expect_threads_match_one_thread(Model& model, Model& reference, int rounds) {
  std::mt19937 rng(5);
  std::vector<float> x(std::size_t(300 * reference.input_numel()));
  std::uniform_int_distribution<int> d(0, 16);
  for (float& v : x) v = float(d(rng)) / 16.0f;  // multiples of 1/16: exact sums on the CPU and the GPU

  std::vector<InferenceResult> expected;
  std::vector<std::vector<Counts>> expected_counts;
  for (int64_t n : kBatches) {
    reference.reset_reports();
    expected.push_back(reference.run(x.data(), n, 3));
    expected_counts.push_back(counts_of(reference.reports()));
  }

  model.reset_reports();
  std::atomic<int> wrong{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int r = 0; r < rounds; ++r) {
          for (int k = 0; k < 4; ++k) {
            const int which = (k + t + r) % 4;  // the threads run different batch sizes at the same time
            const InferenceResult got = model.run(x.data(), kBatches[which], 3);
            if (got.scores != expected[which].scores || got.predictions != expected[which].predictions) ++wrong;
            if (model.reports().size() != expected_counts[which].size()) ++wrong;  // reading while others run
          }
        }
      } catch (...) {
        ++failed;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0) << "runs with other scores than the same batch run alone";

  // Every run counted once: kThreads * rounds runs of each batch size.
  std::vector<Counts> total(expected_counts[0].size());
  for (const std::vector<Counts>& c : expected_counts) {
    for (std::size_t i = 0; i < c.size(); ++i) {
      total[i].synaptic_ops += c[i].synaptic_ops * kThreads * rounds;
      total[i].dense_macs += c[i].dense_macs * kThreads * rounds;
      total[i].spikes += c[i].spikes * kThreads * rounds;
      total[i].neuron_steps += c[i].neuron_steps * kThreads * rounds;
    }
  }
  EXPECT_TRUE(counts_of(model.reports()) == total);
}

TEST(ModelThreads, OneModelFromFourThreadsMatchesOneThread) {
  const std::string file = full_file();
  Model model = Model::from_buffer(file.data(), file.size(), "shared");
  Model reference = Model::from_buffer(file.data(), file.size(), "reference");
  expect_threads_match_one_thread(model, reference, 6);
}

TEST(ModelThreads, PoissonModelFromFourThreadsMatchesOneThread) {
  const std::string file = poisson_file();
  Model model = Model::from_buffer(file.data(), file.size(), "shared");
  Model reference = Model::from_buffer(file.data(), file.size(), "reference");
  expect_threads_match_one_thread(model, reference, 6);
}

// reports() returns a copy (a reference would be read while another thread's run writes it).
static_assert(std::is_same_v<decltype(std::declval<const Model&>().reports()), std::vector<LayerReport>>);

// The same on the GPU (or the CUDA simulator), where the runs share the model's stream and device buffers.
TEST(ModelThreadsCuda, OneModelFromFourThreadsMatchesCpu) {
  if (!build_info().cuda) GTEST_SKIP() << "built without CUDA";
  const std::string file = full_file();
  Model model = Model::from_buffer(file.data(), file.size(), "shared");
  try {
    model.to(Device::kCUDA);
  } catch (const DeviceError& e) {
    GTEST_SKIP() << "no GPU for the runtime: " << e.what();
  }
  Model reference = Model::from_buffer(file.data(), file.size(), "reference");
  expect_threads_match_one_thread(model, reference, 1);  // one round: the simulator runs kernels slowly
  EXPECT_EQ(model.device(), Device::kCUDA);
}

}  // namespace
