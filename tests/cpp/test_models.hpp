// The model files the loader and runtime tests share, written with model_file_writer.hpp: a network small
// enough to check by hand, one with every layer type, one with the layer inputs the other two lack.
#pragma once

#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "model_file_writer.hpp"

namespace spikeops_test {

// x [3] -> linear (integer weights) -> IF, T = 4, direct input: small enough to work out by hand.
inline constexpr const char* kTinyGraph = R"({"time_steps": 4, "encoding": "direct", "input_shape": [3], "layers": [
  {"name": "fc", "type": "linear", "weight": "fc.weight", "bias": "fc.bias", "in_features": 3, "out_features": 2,
   "output_shape": [2]},
  {"name": "sn", "type": "if", "v_threshold": 1.0, "v_reset": 0.0, "detach_reset": false, "surrogate": "Sigmoid",
   "output_shape": [2]}]})";

inline std::vector<NamedTensor> tiny_tensors() {
  return {{"fc.weight", {2, 3}, {1, 0, 0, 0, 0.5f, 0}}, {"fc.bias", {2}, {0, 0.25f}}};
}

inline std::string tiny_file() { return model_file_bytes(kTinyGraph, tiny_tensors()); }

// The tiny network on Poisson-encoded input, with 0/1 weights and no bias.
inline std::string poisson_file() {
  std::string graph = kTinyGraph;
  graph.replace(graph.find("direct"), 6, "poisson");
  return model_file_bytes(graph, {{"fc.weight", {2, 3}, {1, 0, 0, 0, 1, 0}}, {"fc.bias", {2}, {0, 0}}});
}

// Every layer type, both input kinds of linear and conv: conv on real values -> LIF -> conv on spikes ->
// average pooling -> PLIF -> max pooling of spikes -> flatten -> linear on spikes -> IF.
inline constexpr const char* kFullGraph = R"({"time_steps": 3, "encoding": "direct", "input_shape": [1, 6, 6], "layers": [
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

// Multiples of 1/8: every sum of a few of them is exact in float32, in any order.
inline std::vector<float> dyadic_values(std::size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> d(-8, 12);
  std::vector<float> v(n);
  for (float& x : v) x = float(d(rng)) / 8.0f;
  return v;
}

inline std::string full_file() {
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
inline constexpr const char* kMixedGraph = R"({"time_steps": 2, "encoding": "direct", "input_shape": [1, 6, 6], "layers": [
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

inline std::string mixed_file() {
  std::mt19937 rng(8);
  return model_file_bytes(kMixedGraph, {{"0.weight", {2, 1, 3, 3}, dyadic_values(18, rng)},
                                        {"0.bias", {2}, dyadic_values(2, rng)},
                                        {"6.weight", {4, 32}, dyadic_values(128, rng)},
                                        {"6.bias", {4}, dyadic_values(4, rng)}});
}

// x [4] -> linear (the identity, no bias) -> one neuron layer in the generic form, T = 6: `fields` are the
// neuron's fields after "type": "neuron".
inline std::string neuron_graph(const std::string& fields) {
  return R"({"time_steps": 6, "encoding": "direct", "input_shape": [4], "layers": [
  {"name": "fc", "type": "linear", "weight": "fc.weight", "bias": null, "in_features": 4, "out_features": 4,
   "output_shape": [4]},
  {"name": "sn", "type": "neuron", )" + fields + R"(, "output_shape": [4]}]})";
}

inline NamedTensor identity_weight() {
  return {"fc.weight", {4, 4}, {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}};
}

// An Izhikevich layer (two states, six extra parameters) and a KLIF layer (a learnable k) in the generic form.
inline constexpr const char* kIzhikevichFields =
    R"("model": "Izhikevich", "v_threshold": 1.0, "v_reset": 0.0, "tau": 2.0, "decay_input": true,
   "detach_reset": false, "surrogate": "Sigmoid",
   "extra": {"v_c": 0.8, "a0": 1.0, "v_rest": -0.1, "tau_w": 2.0, "a": 0.5, "b": 0.25}, "state_init": [0.0, -0.125])";
inline constexpr const char* kKLIFFields =
    R"("model": "KLIF", "v_threshold": 0.5, "v_reset": null, "tau": 3.0, "decay_input": false,
   "detach_reset": false, "surrogate": "ATan", "extra": {"scale_reset": 1.0}, "learnable": "sn.k",
   "state_init": [0.0])";

inline std::string izhikevich_file() { return model_file_bytes(neuron_graph(kIzhikevichFields), {identity_weight()}); }
inline std::string klif_file() {
  return model_file_bytes(neuron_graph(kKLIFFields), {identity_weight(), {"sn.k", {1}, {0.75f}}});
}

// Two generic neuron layers in a row (the second fed spikes): a seed of the loader's fuzz test.
inline constexpr const char* kZooGraph = R"({"time_steps": 5, "encoding": "direct", "input_shape": [4], "layers": [
  {"name": "0", "type": "linear", "weight": "0.weight", "bias": "0.bias", "in_features": 4, "out_features": 3,
   "output_shape": [3]},
  {"name": "1", "type": "neuron", "model": "Izhikevich", "v_threshold": 1.0, "v_reset": 0.0, "tau": 2.0,
   "decay_input": true, "detach_reset": false, "surrogate": "Sigmoid",
   "extra": {"v_c": 0.8, "a0": 1.0, "v_rest": -0.1, "tau_w": 2.0, "a": 0.5, "b": 0.25}, "state_init": [0.0, -0.125],
   "output_shape": [3]},
  {"name": "2", "type": "linear", "weight": "2.weight", "bias": null, "in_features": 3, "out_features": 2,
   "output_shape": [2]},
  {"name": "3", "type": "neuron", "model": "KLIF", "v_threshold": 0.5, "v_reset": null, "tau": 3.0,
   "decay_input": false, "detach_reset": false, "surrogate": "ATan", "extra": {"scale_reset": 1.0},
   "learnable": "3.k", "state_init": [0.0], "output_shape": [2]}]})";

inline std::string zoo_file() {
  std::mt19937 rng(9);
  return model_file_bytes(kZooGraph, {{"0.weight", {3, 4}, dyadic_values(12, rng)},
                                      {"0.bias", {3}, dyadic_values(3, rng)},
                                      {"2.weight", {2, 3}, dyadic_values(6, rng)},
                                      {"3.k", {1}, {0.75f}}});
}

}  // namespace spikeops_test
