// Loading a model file (docs/model_format.md): the safetensors container, the graph, and every check that
// keeps a damaged or hostile file from reaching the kernels. Nothing here trusts a number from the file
// before it is range-checked; sizes are checked for overflow before they are multiplied.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ios>
#include <iterator>
#include <limits>
#include <map>
#include <system_error>
#include <utility>

#include "model/json.hpp"
#include "model/model_impl.hpp"
#include "spikeops/error.hpp"
#include "spikeops/spike_conv.hpp"
#include "spikeops/spike_gemm.hpp"

namespace spikeops {

std::string shape_to_string(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

namespace {

constexpr uint64_t kMaxHeaderBytes = 100u << 20;
constexpr int64_t kMaxTimeSteps = 65536;
constexpr int64_t kMaxDim = int64_t(1) << 24;         // any one dimension
constexpr int64_t kMaxSampleNumel = int64_t(1) << 28;  // one sample's activations at one step
constexpr std::size_t kMaxLayers = 4096;

struct TensorEntry {
  Shape shape;
  uint64_t begin = 0, end = 0;
};

class Loader {
 public:
  Loader(const unsigned char* data, std::size_t size, std::string source)
      : data_(data), size_(size), source_(std::move(source)) {}

  std::unique_ptr<Model::Impl> load() {
    auto impl = std::make_unique<Model::Impl>();
    impl->source = source_;
    read_container();
    read_graph(*impl);
    return impl;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw Error("spikeops::Model: " + source_ + ": " + why);
  }

  // ---- the safetensors container ----
  void read_container() {
    if (size_ < 8) fail("file too short (" + std::to_string(size_) + " bytes) to hold a model header");
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data_[i];
    if (header_len > kMaxHeaderBytes) fail("header length " + std::to_string(header_len) + " is implausible");
    if (header_len > size_ - 8) {
      fail("truncated: the header says " + std::to_string(header_len) + " bytes but only " +
           std::to_string(size_ - 8) + " follow");
    }
    data_begin_ = 8 + header_len;
    data_size_ = size_ - data_begin_;
    header_ = json::parse(reinterpret_cast<const char*>(data_ + 8), header_len, source_ + ": header");
    if (!header_.is_object()) fail("the header must be a JSON object");

    const json::Value* meta = header_.find("__metadata__");
    if (meta == nullptr || !meta->is_object()) fail("no __metadata__ object: not a spikeops model file");
    for (const auto& m : meta->members()) {
      if (!m.second.is_string()) fail("__metadata__['" + m.first + "'] must be a string");
    }
    const json::Value* format = meta->find("format");
    if (format == nullptr || format->as_string() != "spikeops") {
      fail("__metadata__['format'] is not \"spikeops\": not a spikeops model file");
    }
    const json::Value* version = meta->find("format_version");
    if (version == nullptr) fail("__metadata__ has no 'format_version'");
    if (version->as_string() != "1") {
      fail("unsupported format_version \"" + version->as_string() + "\" (this runtime reads version 1)");
    }
    const json::Value* graph = meta->find("graph");
    if (graph == nullptr) fail("__metadata__ has no 'graph'");
    graph_ = json::parse(graph->as_string().data(), graph->as_string().size(), source_ + ": graph");
    if (!graph_.is_object()) fail("the graph must be a JSON object");

    std::vector<std::pair<uint64_t, uint64_t>> spans;
    for (const auto& m : header_.members()) {
      if (m.first == "__metadata__") continue;
      const std::string where = "tensor '" + m.first + "'";
      const json::Value& t = m.second;
      if (!t.is_object()) fail(where + " must be an object");
      const json::Value* dtype = t.find("dtype");
      if (dtype == nullptr || !dtype->is_string()) fail(where + " has no dtype");
      if (dtype->as_string() != "F32") fail(where + " has dtype " + dtype->as_string() + "; only F32 is supported");
      TensorEntry e;
      e.shape = int_list(t.find("shape"), where + ".shape", 0, 8, 0, kMaxDim * 64);
      const Shape offsets = int_list(t.find("data_offsets"), where + ".data_offsets", 2, 2, 0,
                                     std::numeric_limits<int64_t>::max());
      e.begin = uint64_t(offsets[0]);
      e.end = uint64_t(offsets[1]);
      if (e.begin > e.end || e.end > data_size_) {
        fail(where + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
             ") are outside the " + std::to_string(data_size_) + "-byte data section (truncated file?)");
      }
      uint64_t numel = 1;
      for (int64_t d : e.shape) {
        if (d != 0 && numel > data_size_ / uint64_t(d)) fail(where + ": shape " + shape_to_string(e.shape) + " is larger than the file");
        numel *= uint64_t(d);
      }
      if (numel > data_size_ / 4 + 1 || e.end - e.begin != numel * 4) {
        fail(where + ": shape " + shape_to_string(e.shape) + " needs " + std::to_string(numel * 4) +
             " bytes but data_offsets span " + std::to_string(e.end - e.begin));
      }
      spans.emplace_back(e.begin, e.end);
      tensors_.emplace(m.first, std::move(e));
    }
    // safetensors: the tensors tile the data section, without gaps or overlap.
    std::sort(spans.begin(), spans.end());
    uint64_t at = 0;
    for (const auto& s : spans) {
      if (s.first != at) fail("tensor data overlaps or leaves a gap at byte " + std::to_string(at));
      at = s.second;
    }
    if (at != data_size_) {
      fail("the data section has " + std::to_string(data_size_) + " bytes but the tensors cover " +
           std::to_string(at));
    }
  }

  // A JSON array of `min_len`..`max_len` integers, each in [lo, hi].
  Shape int_list(const json::Value* v, const std::string& where, std::size_t min_len, std::size_t max_len,
                 int64_t lo, int64_t hi) const {
    if (v == nullptr) fail(where + " is missing");
    if (!v->is_array() || v->items().size() < min_len || v->items().size() > max_len) {
      fail(where + " must be a list of " + std::to_string(min_len) +
           (min_len == max_len ? "" : " to " + std::to_string(max_len)) + " integers");
    }
    Shape out;
    for (const auto& item : v->items()) {
      if (!item.is_integer() || item.as_int() < lo || item.as_int() > hi) {
        fail(where + " must hold integers in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
      }
      out.push_back(item.as_int());
    }
    return out;
  }

  // ---- the graph ----
  void read_graph(Model::Impl& impl) {
    const json::Value* T = graph_.find("time_steps");
    if (T == nullptr || !T->is_integer() || T->as_int() < 1 || T->as_int() > kMaxTimeSteps) {
      fail("graph.time_steps must be an integer in [1, " + std::to_string(kMaxTimeSteps) + "]");
    }
    impl.time_steps = T->as_int();

    const json::Value* enc = graph_.find("encoding");
    if (enc == nullptr || !enc->is_string()) fail("graph.encoding must be a string");
    if (enc->as_string() == "direct") {
      impl.encoding = InputEncoding::kDirect;
    } else if (enc->as_string() == "poisson") {
      impl.encoding = InputEncoding::kPoisson;
    } else {
      fail("graph.encoding \"" + enc->as_string() + "\" is not supported (direct or poisson)");
    }

    impl.input_shape = int_list(graph_.find("input_shape"), "graph.input_shape", 1, 4, 1, kMaxDim);
    check_sample_size(impl.input_shape, "graph.input_shape");

    const json::Value* layers = graph_.find("layers");
    if (layers == nullptr || !layers->is_array() || layers->items().empty() || layers->items().size() > kMaxLayers) {
      fail("graph.layers must be a list of 1 to " + std::to_string(kMaxLayers) + " layers");
    }
    Shape shape = impl.input_shape;
    bool spikes = impl.encoding == InputEncoding::kPoisson;
    for (std::size_t i = 0; i < layers->items().size(); ++i) {
      ModelLayer layer = read_layer(layers->items()[i], i, shape, spikes);
      shape = layer.out_shape;
      spikes = layer.spike_output;
      LayerReport report;
      report.name = layer.name;
      report.type = layer.type;
      report.output_shape = layer.out_shape;
      report.spike_input = layer.spike_input;
      impl.reports.push_back(report);
      impl.layers.push_back(std::move(layer));
    }
  }

  void check_sample_size(const Shape& s, const std::string& where) const {
    int64_t n = 1;
    for (int64_t d : s) {
      if (d < 1 || d > kMaxDim || n > kMaxSampleNumel / d) {
        fail(where + ": shape " + shape_to_string(s) + " is empty or larger than the runtime supports");
      }
      n *= d;
    }
  }

  class Fields {
   public:
    Fields(const Loader& loader, const json::Value& v, std::string where)
        : loader_(loader), v_(v), where_(std::move(where)) {}
    [[noreturn]] void fail(const std::string& why) const { loader_.fail(where_ + ": " + why); }
    const json::Value& get(const char* key) const {
      const json::Value* f = v_.find(key);
      if (f == nullptr) fail(std::string("field '") + key + "' is missing");
      return *f;
    }
    int64_t integer(const char* key, int64_t lo, int64_t hi) const {
      const json::Value& f = get(key);
      if (!f.is_integer() || f.as_int() < lo || f.as_int() > hi) {
        fail(std::string("field '") + key + "' must be an integer in [" + std::to_string(lo) + ", " +
             std::to_string(hi) + "]");
      }
      return f.as_int();
    }
    Pair pair(const char* key, int64_t lo, int64_t hi) const {
      Shape p = loader_.int_list(&get(key), where_ + "." + key, 2, 2, lo, hi);
      return Pair{p[0], p[1]};
    }
    bool boolean(const char* key) const {
      const json::Value& f = get(key);
      if (!f.is_bool()) fail(std::string("field '") + key + "' must be true or false");
      return f.as_bool();
    }
    float finite_float(const char* key) const {
      const json::Value& f = get(key);
      if (!f.is_number() || !std::isfinite(float(f.as_double()))) {
        fail(std::string("field '") + key + "' must be a finite number");
      }
      return float(f.as_double());
    }
    const std::string& string(const char* key) const {
      const json::Value& f = get(key);
      if (!f.is_string()) fail(std::string("field '") + key + "' must be a string");
      return f.as_string();
    }
    bool is_null(const char* key) const { return get(key).is_null(); }
    const json::Value* find(const char* key) const { return v_.find(key); }
    const std::string& where() const { return where_; }

   private:
    const Loader& loader_;
    const json::Value& v_;
    std::string where_;
  };

  // The tensor named by field `key`, which must have exactly `shape`.
  std::vector<float> tensor(const Fields& f, const char* key, const Shape& shape) const {
    const std::string& name = f.string(key);
    auto it = tensors_.find(name);
    if (it == tensors_.end()) f.fail(std::string("field '") + key + "' names tensor '" + name + "', which the file lacks");
    if (it->second.shape != shape) {
      f.fail("tensor '" + name + "' has shape " + shape_to_string(it->second.shape) + ", expected " +
             shape_to_string(shape));
    }
    std::vector<float> out(std::size_t(shape_numel(shape)));
    // The file is little-endian float32; so is every machine this library targets (checked at compile time
    // in model_run.cpp), so the bytes are copied as they are.
    if (!out.empty()) std::memcpy(out.data(), data_ + data_begin_ + it->second.begin, out.size() * sizeof(float));
    return out;
  }

  ModelLayer read_layer(const json::Value& v, std::size_t index, const Shape& in_shape, bool spike_input) const {
    std::string where = "graph.layers[" + std::to_string(index) + "]";
    if (!v.is_object()) fail(where + " must be an object");
    {
      Fields pre(*this, v, where);
      where += " ('" + pre.string("name") + "', " + pre.string("type") + ")";
    }
    Fields f(*this, v, where);
    ModelLayer layer;
    layer.name = f.string("name");
    layer.type = f.string("type");
    layer.in_shape = in_shape;
    layer.spike_input = spike_input;
    const std::string& type = layer.type;

    if (type == "linear") {
      layer.kind = LayerKind::kLinear;
      if (in_shape.size() != 1) f.fail("input shape " + shape_to_string(in_shape) + " is not 1-D (flatten first)");
      layer.K = f.integer("in_features", 1, kMaxDim);
      layer.O = f.integer("out_features", 1, kMaxDim);
      if (layer.K != in_shape[0]) {
        f.fail("in_features " + std::to_string(layer.K) + " does not match the input " + shape_to_string(in_shape));
      }
      read_weights(f, layer, {layer.O, layer.K});
      layer.out_shape = {layer.O};
    } else if (type == "conv2d") {
      layer.kind = LayerKind::kConv2d;
      if (in_shape.size() != 3) f.fail("input shape " + shape_to_string(in_shape) + " is not [C, H, W]");
      const int64_t C = f.integer("in_channels", 1, kMaxDim);
      layer.O = f.integer("out_channels", 1, kMaxDim);
      if (C != in_shape[0]) {
        f.fail("in_channels " + std::to_string(C) + " does not match the input " + shape_to_string(in_shape));
      }
      if (f.integer("groups", 1, kMaxDim) != 1) f.fail("groups other than 1 are not supported");
      layer.kernel = f.pair("kernel_size", 1, 1024);
      layer.stride = f.pair("stride", 1, 1024);
      layer.padding = f.pair("padding", 0, 1024);
      layer.dilation = f.pair("dilation", 1, 1024);
      layer.K = C * layer.kernel.h * layer.kernel.w;
      layer.out_shape = {layer.O, conv_out(f, in_shape[1], layer.kernel.h, layer.stride.h, layer.padding.h, layer.dilation.h),
                         conv_out(f, in_shape[2], layer.kernel.w, layer.stride.w, layer.padding.w, layer.dilation.w)};
      read_weights(f, layer, {layer.O, C, layer.kernel.h, layer.kernel.w});
    } else if (type == "flatten") {
      layer.kind = LayerKind::kFlatten;
      layer.out_shape = {shape_numel(in_shape)};
      layer.spike_output = spike_input;
    } else if (type == "max_pool2d" || type == "avg_pool2d") {
      layer.kind = type == "max_pool2d" ? LayerKind::kMaxPool2d : LayerKind::kAvgPool2d;
      if (in_shape.size() != 3) f.fail("input shape " + shape_to_string(in_shape) + " is not [C, H, W]");
      layer.kernel = f.pair("kernel_size", 1, 1024);
      layer.stride = f.pair("stride", 1, 1024);
      layer.padding = f.pair("padding", 0, 512);
      if (layer.padding.h * 2 > layer.kernel.h || layer.padding.w * 2 > layer.kernel.w) {
        f.fail("padding must be at most half the kernel size");
      }
      if (layer.kind == LayerKind::kAvgPool2d) layer.count_include_pad = f.boolean("count_include_pad");
      layer.out_shape = {in_shape[0], conv_out(f, in_shape[1], layer.kernel.h, layer.stride.h, layer.padding.h, 1),
                         conv_out(f, in_shape[2], layer.kernel.w, layer.stride.w, layer.padding.w, 1)};
      // The max of 0/1 spikes is their OR, still a spike; an average is not.
      layer.spike_output = spike_input && layer.kind == LayerKind::kMaxPool2d;
    } else if (type == "neuron") {
      read_neuron(f, layer);
    } else if (type == "if" || type == "lif" || type == "plif") {
      read_legacy_neuron(f, layer);
    } else {
      f.fail("layer type '" + type + "' is not supported by this runtime");
    }

    check_sample_size(layer.out_shape, where + ": output");
    const Shape declared = int_list(&f.get("output_shape"), where + ".output_shape", 1, 4, 1, kMaxDim);
    if (declared != layer.out_shape) {
      f.fail("output_shape " + shape_to_string(declared) + " disagrees with the shape the layer computes, " +
             shape_to_string(layer.out_shape));
    }
    return layer;
  }

  // ---- neurons ----
  // The fields every neuron form has.
  void read_neuron_common(const Fields& f, NeuronParams& p) const {
    p.v_threshold = f.finite_float("v_threshold");
    p.hard_reset = !f.is_null("v_reset");
    p.v_reset = p.hard_reset ? f.finite_float("v_reset") : 0.0f;
    p.detach_reset = f.boolean("detach_reset");
    f.string("surrogate");  // training only: checked to be present, not used
  }

  double read_tau(const Fields& f) const {
    const json::Value& tau = f.get("tau");
    if (!tau.is_number() || !(tau.as_double() > 1.0) || !std::isfinite(tau.as_double())) {
      f.fail("field 'tau' must be a finite number > 1");
    }
    return tau.as_double();
  }

  // The model's own checks (validate_neuron_params), reported with the layer.
  void finish_neuron(const Fields& f, ModelLayer& layer) const {
    try {
      validate_neuron_params(layer.neuron);
    } catch (const Error& e) {
      f.fail(e.what());
    }
    layer.out_shape = layer.in_shape;
    layer.spike_output = true;
  }

  // {"type": "neuron", "model": <NeuronKind name>, ...}: every model, through its neuron_info, so a new model
  // needs no change here.
  void read_neuron(const Fields& f, ModelLayer& layer) const {
    layer.kind = LayerKind::kNeuron;
    NeuronParams& p = layer.neuron;
    const std::string& model = f.string("model");
    bool known = false;
    std::string names;
#define SPIKEOPS_NEURON_BY_NAME(ID, NAME)  \
    names += std::string(names.empty() ? "" : ", ") + #NAME; \
    if (model == #NAME) {                  \
      p.kind = NeuronKind::k##NAME;        \
      known = true;                        \
    }
    SPIKEOPS_FOR_EACH_NEURON_KIND(SPIKEOPS_NEURON_BY_NAME)
#undef SPIKEOPS_NEURON_BY_NAME
    if (!known) f.fail("field 'model' \"" + model + "\" is not a neuron model of this runtime (" + names + ")");
    const NeuronInfo info = neuron_info(p.kind);
    if (!info.spiking) {
      f.fail("field 'model' \"" + model + "\" outputs its membrane potential, not spikes; a neuron layer of the "
             "runtime outputs spikes");
    }
    read_neuron_common(f, p);
    p.tau = read_tau(f);
    p.decay_input = f.boolean("decay_input");

    // extra: {name: number} with exactly the model's extra_names.
    const json::Value& extra = f.get("extra");
    std::string expected;
    for (int i = 0; i < info.extra; ++i) expected += std::string(i ? ", " : "") + info.extra_names[i];
    const std::string expected_text = info.extra == 0 ? "{} (" + model + " has no extra parameters)"
                                                       : "an object of the numbers " + expected;
    if (!extra.is_object() || extra.members().size() != std::size_t(info.extra)) {
      f.fail("field 'extra' must be " + expected_text);
    }
    for (int i = 0; i < info.extra; ++i) {
      const json::Value* e = extra.find(info.extra_names[i]);
      if (e == nullptr) f.fail("field 'extra' lacks '" + std::string(info.extra_names[i]) + "': expected " + expected_text);
      if (!e->is_number() || !std::isfinite(float(e->as_double()))) {
        f.fail("field 'extra': '" + std::string(info.extra_names[i]) + "' must be a finite number");
      }
      p.extra[std::size_t(i)] = float(e->as_double());
    }

    // learnable: the tensor of the model's P learnable scalars, absent when it has none.
    if (info.learnable == 0) {
      if (f.find("learnable") != nullptr) f.fail("field 'learnable' must be absent: " + model + " has no learnable scalars");
    } else {
      layer.learnable = tensor(f, "learnable", {info.learnable});
      for (float v : layer.learnable) {
        if (!std::isfinite(v)) f.fail("tensor '" + f.string("learnable") + "' must hold finite numbers");
      }
    }

    // state_init: each state's value before step 0.
    const json::Value& init = f.get("state_init");
    const std::string init_text = "field 'state_init' must be a list of " + std::to_string(info.states) +
                                  " finite numbers (" + model + "'s states, V first)";
    if (!init.is_array() || init.items().size() != std::size_t(info.states)) f.fail(init_text);
    for (const json::Value& v : init.items()) {
      if (!v.is_number() || !std::isfinite(float(v.as_double()))) f.fail(init_text);
      layer.state_init.push_back(float(v.as_double()));
    }
    finish_neuron(f, layer);
  }

  // The first runtime's forms, still read: "if", "lif" (tau) and "plif" (decay tensor [1]); V starts at the
  // reset potential (0 with the soft reset).
  void read_legacy_neuron(const Fields& f, ModelLayer& layer) const {
    layer.kind = LayerKind::kNeuron;
    NeuronParams& p = layer.neuron;
    const std::string& type = layer.type;
    p.kind = type == "if" ? NeuronKind::kIF : type == "lif" ? NeuronKind::kLIF : NeuronKind::kParametricLIF;
    read_neuron_common(f, p);
    if (p.kind == NeuronKind::kLIF) p.tau = read_tau(f);
    if (p.kind != NeuronKind::kIF) p.decay_input = f.boolean("decay_input");
    if (p.kind == NeuronKind::kParametricLIF) {
      const float decay = tensor(f, "decay", {1})[0];
      if (!(decay > 0.0f && decay <= 1.0f)) f.fail("decay = sigmoid(w) must be in (0, 1]");
      layer.learnable = {decay};
    }
    layer.state_init = {p.hard_reset ? p.v_reset : 0.0f};
    finish_neuron(f, layer);
  }

  int64_t conv_out(const Fields& f, int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) const {
    const int64_t span = d * (k - 1) + 1;
    if (in + 2 * p < span) f.fail("the kernel is larger than the (padded) input " + std::to_string(in + 2 * p));
    return (in + 2 * p - span) / s + 1;
  }

  // W [O, ...] with K = numel / O, kept as W^T [K, O]: packed for the spike GEMM in a linear layer fed spikes,
  // as it is for a linear layer fed real values; a convolution's in the rows of its event-driven kernel (which
  // takes both kinds of input: ConvWeightLayout::kPacked).
  void read_weights(const Fields& f, ModelLayer& layer, const Shape& weight_shape) const {
    const std::vector<float> w = tensor(f, "weight", weight_shape);
    const int64_t K = layer.K, O = layer.O;
    if (!f.is_null("bias")) layer.bias = tensor(f, "bias", {O});
    if (layer.kind == LayerKind::kConv2d) {
      const int64_t C = layer.in_shape[0], kh = layer.kernel.h, kw = layer.kernel.w, ld = conv2d_packed_channels(O);
      layer.weight_t.resize(std::size_t(K * ld));
      pack_conv2d_weight(make_tensor_view(const_cast<float*>(w.data()), DType::kFloat32, {O, C, kh, kw}),
                         make_tensor_view(layer.weight_t.data(), DType::kFloat32, {1, kh, kw, C, ld}), 1);
      return;
    }
    std::vector<float> wt(std::size_t(K * O), 0.0f);
    for (int64_t o = 0; o < O; ++o) {
      for (int64_t k = 0; k < K; ++k) wt[std::size_t(k * O + o)] = w[std::size_t(o * K + k)];
    }
    if (layer.spike_input && layer.kind == LayerKind::kLinear) {
      const int64_t tiles = (O + kPackedTileN - 1) / kPackedTileN;
      layer.packed.assign(std::size_t(tiles * K * kPackedTileN), 0.0f);
      pack_rows(make_tensor_view(wt.data(), DType::kFloat32, {K, O}),
                make_tensor_view(layer.packed.data(), DType::kFloat32, {tiles, K, int64_t(kPackedTileN)}));
    } else {
      layer.weight_t = std::move(wt);
    }
  }

  const unsigned char* data_;
  std::size_t size_;
  std::string source_;
  uint64_t data_begin_ = 0, data_size_ = 0;
  json::Value header_, graph_;
  std::map<std::string, TensorEntry> tensors_;
};

}  // namespace

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Model Model::from_buffer(const void* data, std::size_t size, const std::string& source) {
  if (data == nullptr && size > 0) throw Error("spikeops::Model::from_buffer: data is null");
  static const unsigned char kEmpty = 0;
  Loader loader(data ? static_cast<const unsigned char*>(data) : &kEmpty, size, source);
  return Model(loader.load());
}

Model Model::load(const std::string& path) {
  // A directory opens as a stream on Linux and fails only when read, with the standard library's words and
  // no path: say so first.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw Error("spikeops::Model::load: '" + path + "' is a directory, expected a model file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("spikeops::Model::load: cannot open '" + path + "'");
  std::vector<char> bytes;
  try {
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } catch (const std::ios_base::failure& e) {  // libstdc++ throws on a failed read(2) even without exceptions()
    throw Error("spikeops::Model::load: error reading '" + path + "': " + e.what());
  }
  if (in.bad()) throw Error("spikeops::Model::load: error reading '" + path + "'");
  return from_buffer(bytes.data(), bytes.size(), path);
}

}  // namespace spikeops
