// Runs a layer of LIF neurons for T steps on a constant input current, with no Python or torch involved,
// and prints the firing rate of each neuron.
#include <cstdint>
#include <cstdio>
#include <vector>

#include "spikeops/spikeops.hpp"

int main() {
  const int64_t T = 20, N = 4;
  std::vector<float> x(T * N), v_init(N, 0.0f), v_final(N);
  std::vector<uint8_t> spikes(T * N);  // 1 byte per spike
  const float current[N] = {0.5f, 1.0f, 1.5f, 3.0f};
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 0; n < N; ++n) x[t * N + n] = current[n];

  spikeops::NeuronParams lif;  // LIF, tau = 2, v_threshold = 1, hard reset to 0
  spikeops::NeuronForwardArgs args;
  args.x_seq = spikeops::make_tensor_view(x.data(), spikeops::DType::kFloat32, {T, N});
  args.state_init = spikeops::make_tensor_view(v_init.data(), spikeops::DType::kFloat32, {N});
  args.spike_seq = spikeops::make_tensor_view(spikes.data(), spikeops::DType::kUInt8, {T, N});
  args.state_final = spikeops::make_tensor_view(v_final.data(), spikeops::DType::kFloat32, {N});
  try {
    spikeops::neuron_multistep_forward(lif, args);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "bad arguments: %s\n", e.what());
    return 1;
  }
  for (int64_t n = 0; n < N; ++n) {
    int count = 0;
    for (int64_t t = 0; t < T; ++t) count += spikes[t * N + n];
    std::printf("input %.1f -> %d spikes in %lld steps\n", current[n], count, static_cast<long long>(T));
  }
  return 0;
}
