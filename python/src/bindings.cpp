// pybind11 module spikeops._C: the core's structs and entry points. Tensors cross as TensorViews built from
// integer data pointers; the GIL is released around every kernel call; C++ exceptions become Python ones
// (spikeops::Error, a std::invalid_argument, becomes ValueError; DeviceError becomes RuntimeError).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "spikeops/kernel_policy.hpp"
#include "spikeops/spikeops.hpp"

namespace py = pybind11;
using namespace spikeops;

namespace {

TensorView tensor_view(std::uintptr_t data, DType dtype, const std::vector<int64_t>& shape,
                       const std::vector<int64_t>& strides, Device device, int device_index) {
  if (shape.size() != strides.size()) throw Error("TensorView: shape and strides must have the same length");
  TensorView t = make_tensor_view(reinterpret_cast<void*>(data), dtype, shape.data(),
                                  static_cast<int>(shape.size()), device, device_index);
  for (size_t i = 0; i < strides.size(); ++i) t.strides[i] = strides[i];
  return t;
}

Conv2dParams conv2d_params(std::array<int64_t, 2> stride, std::array<int64_t, 2> padding,
                           std::array<int64_t, 2> dilation, int64_t groups) {
  Conv2dParams p;
  for (int i = 0; i < 2; ++i) {
    p.stride[i] = stride[i];
    p.padding[i] = padding[i];
    p.dilation[i] = dilation[i];
  }
  p.groups = groups;
  return p;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "spikeops core kernels (C++/CUDA); use the spikeops package, not this module, directly";

  py::enum_<DType>(m, "DType")
      .value("float32", DType::kFloat32)
      .value("float16", DType::kFloat16)
      .value("bfloat16", DType::kBFloat16)
      .value("uint8", DType::kUInt8)
      .value("float64", DType::kFloat64);
  py::enum_<SpikeGemmKernel>(m, "SpikeGemmKernel")
      .value("auto", SpikeGemmKernel::kAuto)
      .value("events", SpikeGemmKernel::kEvents)
      .value("tiled_events", SpikeGemmKernel::kTiledEvents)
      .value("tensor_core", SpikeGemmKernel::kTensorCore)
      .value("dense", SpikeGemmKernel::kDense);
  py::enum_<SpikeConvKernel>(m, "SpikeConvKernel")
      .value("auto", SpikeConvKernel::kAuto)
      .value("events", SpikeConvKernel::kEvents)
      .value("dense", SpikeConvKernel::kDense);
  py::enum_<RowsLayout>(m, "RowsLayout")
      .value("row_major", RowsLayout::kRowMajor)
      .value("packed", RowsLayout::kPacked)
      .value("transposed", RowsLayout::kTransposed);
  py::enum_<Device>(m, "Device").value("cpu", Device::kCPU).value("cuda", Device::kCUDA);

  // The kernel-choice policy (kernel_policy.hpp).
  py::class_<SpikeGemmProblem>(m, "SpikeGemmProblem")
      .def(py::init([](int64_t M, int64_t K, int64_t N, bool weight_gradient, Device device, bool tensor_cores) {
             SpikeGemmProblem p;
             p.M = M;
             p.K = K;
             p.N = N;
             p.weight_gradient = weight_gradient;
             p.device = device;
             p.tensor_cores = tensor_cores;
             return p;
           }),
           py::arg("M"), py::arg("K"), py::arg("N"), py::arg("weight_gradient") = false,
           py::arg("device") = Device::kCPU, py::arg("tensor_cores") = true)
      .def_readwrite("M", &SpikeGemmProblem::M)
      .def_readwrite("K", &SpikeGemmProblem::K)
      .def_readwrite("N", &SpikeGemmProblem::N)
      .def_readwrite("weight_gradient", &SpikeGemmProblem::weight_gradient)
      .def_readwrite("device", &SpikeGemmProblem::device)
      .def_readwrite("tensor_cores", &SpikeGemmProblem::tensor_cores);
  py::class_<SpikeConv2dProblem>(m, "SpikeConv2dProblem")
      .def(py::init([](int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t kh, int64_t kw,
                       bool weight_gradient, Device device) {
             SpikeConv2dProblem p;
             p.N = N;
             p.C = C;
             p.H = H;
             p.W = W;
             p.O = O;
             p.kh = kh;
             p.kw = kw;
             p.weight_gradient = weight_gradient;
             p.device = device;
             return p;
           }),
           py::arg("N"), py::arg("C"), py::arg("H"), py::arg("W"), py::arg("O"), py::arg("kh"), py::arg("kw"),
           py::arg("weight_gradient") = false, py::arg("device") = Device::kCPU)
      .def_readwrite("N", &SpikeConv2dProblem::N)
      .def_readwrite("C", &SpikeConv2dProblem::C)
      .def_readwrite("H", &SpikeConv2dProblem::H)
      .def_readwrite("W", &SpikeConv2dProblem::W)
      .def_readwrite("O", &SpikeConv2dProblem::O)
      .def_readwrite("kh", &SpikeConv2dProblem::kh)
      .def_readwrite("kw", &SpikeConv2dProblem::kw)
      .def_readwrite("weight_gradient", &SpikeConv2dProblem::weight_gradient)
      .def_readwrite("device", &SpikeConv2dProblem::device);
  m.def("spike_gemm_needs_firing_rate", &spike_gemm_needs_firing_rate, py::arg("problem"));
  m.def("choose_spike_gemm_kernel", &choose_spike_gemm_kernel, py::arg("problem"), py::arg("firing_rate"));
  m.def("spike_conv2d_needs_firing_rate", &spike_conv2d_needs_firing_rate, py::arg("problem"));
  m.def("choose_spike_conv2d_kernel", &choose_spike_conv2d_kernel, py::arg("problem"), py::arg("firing_rate"));

  py::class_<TensorView>(m, "TensorView")
      .def(py::init<>())
      .def(py::init(&tensor_view), py::arg("data"), py::arg("dtype"), py::arg("shape"), py::arg("strides"),
           py::arg("device") = Device::kCPU, py::arg("device_index") = 0)
      .def_property_readonly("numel", &TensorView::numel)
      .def("__repr__", [](const TensorView& t) {
        return "TensorView(" + std::string(dtype_name(t.dtype)) + ", " + t.shape_string() + ", " +
               device_name(t.device) + ")";
      });

  py::enum_<SurrogateKind>(m, "SurrogateKind")
      .value("Sigmoid", SurrogateKind::kSigmoid)
      .value("ATan", SurrogateKind::kATan)
      .value("PiecewiseQuadratic", SurrogateKind::kPiecewiseQuadratic)
      .value("PiecewiseExp", SurrogateKind::kPiecewiseExp)
      .value("SoftSign", SurrogateKind::kSoftSign)
      .value("SuperSpike", SurrogateKind::kSuperSpike)
      .value("Erf", SurrogateKind::kErf)
      .value("Rect", SurrogateKind::kRect)
      .value("PiecewiseLeakyReLU", SurrogateKind::kPiecewiseLeakyReLU)
      .value("FastSigmoid", SurrogateKind::kFastSigmoid)
      .value("NonzeroSignLogAbs", SurrogateKind::kNonzeroSignLogAbs)
      .value("S2NN", SurrogateKind::kS2NN)
      .value("QPseudoSpike", SurrogateKind::kQPseudoSpike)
      .value("LeakyKReLU", SurrogateKind::kLeakyKReLU)
      .value("FakeNumericalGradient", SurrogateKind::kFakeNumericalGradient)
      .value("LogTailedReLU", SurrogateKind::kLogTailedReLU)
      .value("SquarewaveFourierSeries", SurrogateKind::kSquarewaveFourierSeries)
      .value("DeterministicPass", SurrogateKind::kDeterministicPass);

  py::class_<Surrogate>(m, "Surrogate")
      .def(py::init([](SurrogateKind kind, float alpha, float beta) { return Surrogate{kind, alpha, beta}; }),
           py::arg("kind"), py::arg("alpha"), py::arg("beta") = 0.0f)
      .def_readwrite("kind", &Surrogate::kind)
      .def_readwrite("alpha", &Surrogate::alpha)
      .def_readwrite("beta", &Surrogate::beta);

  {
    py::enum_<NeuronKind> kinds(m, "NeuronKind");
#define SPIKEOPS_NEURON_VALUE(ID, NAME) kinds.value(#NAME, NeuronKind::k##NAME);
    SPIKEOPS_FOR_EACH_NEURON_KIND(SPIKEOPS_NEURON_VALUE)
#undef SPIKEOPS_NEURON_VALUE
  }
  m.attr("MAX_NEURON_EXTRA_PARAMS") = kMaxNeuronExtraParams;
  m.def(
      "neuron_info",
      [](NeuronKind kind) {
        const NeuronInfo info = neuron_info(kind);
        py::list extra_names;
        for (int i = 0; i < info.extra; ++i) extra_names.append(info.extra_names[i]);
        py::dict d;
        d["name"] = info.name;
        d["states"] = info.states;
        d["saved"] = info.saved;
        d["learnable"] = info.learnable;
        d["extra_names"] = py::tuple(extra_names);
        d["saved_grad"] = info.saved_grad;
        d["spiking"] = info.spiking;
        return d;
      },
      py::arg("kind"));

  py::class_<NeuronParams>(m, "NeuronParams")
      .def(py::init<>())
      .def_readwrite("kind", &NeuronParams::kind)
      .def_readwrite("v_threshold", &NeuronParams::v_threshold)
      .def_readwrite("hard_reset", &NeuronParams::hard_reset)
      .def_readwrite("v_reset", &NeuronParams::v_reset)
      .def_readwrite("tau", &NeuronParams::tau)
      .def_readwrite("decay_input", &NeuronParams::decay_input)
      .def_readwrite("detach_reset", &NeuronParams::detach_reset)
      .def_readwrite("surrogate", &NeuronParams::surrogate)
      .def_readwrite("extra", &NeuronParams::extra);

  py::class_<NeuronForwardArgs>(m, "NeuronForwardArgs")
      .def(py::init<>())
      .def_readwrite("x_seq", &NeuronForwardArgs::x_seq)
      .def_readwrite("state_init", &NeuronForwardArgs::state_init)
      .def_readwrite("learnable", &NeuronForwardArgs::learnable)
      .def_readwrite("spike_seq", &NeuronForwardArgs::spike_seq)
      .def_readwrite("state_final", &NeuronForwardArgs::state_final)
      .def_readwrite("saved", &NeuronForwardArgs::saved)
      .def_readwrite("v_seq", &NeuronForwardArgs::v_seq)
      .def_property(
          "stream", [](const NeuronForwardArgs& a) { return reinterpret_cast<std::uintptr_t>(a.stream); },
          [](NeuronForwardArgs& a, std::uintptr_t s) { a.stream = reinterpret_cast<void*>(s); });

  py::class_<NeuronBackwardArgs>(m, "NeuronBackwardArgs")
      .def(py::init<>())
      .def_readwrite("grad_spike_seq", &NeuronBackwardArgs::grad_spike_seq)
      .def_readwrite("grad_v_seq", &NeuronBackwardArgs::grad_v_seq)
      .def_readwrite("grad_state_final", &NeuronBackwardArgs::grad_state_final)
      .def_readwrite("grad_saved", &NeuronBackwardArgs::grad_saved)
      .def_readwrite("saved", &NeuronBackwardArgs::saved)
      .def_readwrite("state_init", &NeuronBackwardArgs::state_init)
      .def_readwrite("learnable", &NeuronBackwardArgs::learnable)
      .def_readwrite("surrogate_grad_seq", &NeuronBackwardArgs::surrogate_grad_seq)
      .def_readwrite("grad_x_seq", &NeuronBackwardArgs::grad_x_seq)
      .def_readwrite("grad_state_init", &NeuronBackwardArgs::grad_state_init)
      .def_readwrite("grad_learnable", &NeuronBackwardArgs::grad_learnable)
      .def_property(
          "stream", [](const NeuronBackwardArgs& a) { return reinterpret_cast<std::uintptr_t>(a.stream); },
          [](NeuronBackwardArgs& a, std::uintptr_t s) { a.stream = reinterpret_cast<void*>(s); });

  m.def("neuron_multistep_forward", &neuron_multistep_forward, py::arg("params"), py::arg("args"),
        py::call_guard<py::gil_scoped_release>());
  m.def("neuron_multistep_backward", &neuron_multistep_backward, py::arg("params"), py::arg("args"),
        py::call_guard<py::gil_scoped_release>());
  m.def(
      "heaviside_forward",
      [](const TensorView& x, const TensorView& spike, std::uintptr_t stream) {
        heaviside_forward(x, spike, reinterpret_cast<void*>(stream));
      },
      py::arg("x"), py::arg("spike"), py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>());
  m.def(
      "surrogate_backward",
      [](const Surrogate& s, const TensorView& grad_spike, const TensorView& x, const TensorView& grad_x,
         std::uintptr_t stream) { surrogate_backward(s, grad_spike, x, grad_x, reinterpret_cast<void*>(stream)); },
      py::arg("surrogate"), py::arg("grad_spike"), py::arg("x"), py::arg("grad_x"), py::arg("stream") = 0,
      py::call_guard<py::gil_scoped_release>());

  m.def(
      "validate_surrogate", [](const Surrogate& s, const std::string& arg) { validate_surrogate(s, arg.c_str()); },
      py::arg("surrogate"), py::arg("arg_name") = "surrogate");
  m.def(
      "spike_accumulate",
      [](const TensorView& spikes, const TensorView& rows, RowsLayout rows_layout, const TensorView& bias,
         const TensorView& out, bool out_transposed, SpikeGemmKernel kernel, double firing_rate,
         std::uintptr_t stream) {
        SpikeAccumulateArgs a;
        a.spikes = spikes;
        a.rows = rows;
        a.rows_layout = rows_layout;
        a.bias = bias;
        a.out = out;
        a.out_transposed = out_transposed;
        a.kernel = kernel;
        a.firing_rate = firing_rate;
        a.stream = reinterpret_cast<void*>(stream);
        spike_accumulate(a);
      },
      py::arg("spikes"), py::arg("rows"), py::arg("rows_layout"), py::arg("bias"), py::arg("out"),
      py::arg("out_transposed") = false, py::arg("kernel") = SpikeGemmKernel::kAuto, py::arg("firing_rate") = -1.0,
      py::arg("stream") = 0,
      py::call_guard<py::gil_scoped_release>());

  m.def(
      "spike_bytes",
      [](const TensorView& values, const TensorView& bytes, std::uintptr_t stream) {
        const SpikeValueCounts c = spike_bytes(values, bytes, reinterpret_cast<void*>(stream));
        return std::make_tuple(c.nonzero, c.negative, c.invalid);  // converted once the GIL is held again
      },
      py::arg("values"), py::arg("bytes"), py::arg("stream") = 0,
      "bytes = (values != 0) for float values; returns (nonzero, negative, invalid): the counts of nonzero values, "
      "of -1 values and of values other than 0, 1 and -1",
      py::call_guard<py::gil_scoped_release>());

  m.def(
      "spike_conv2d",
      [](const TensorView& spikes, const TensorView& weight, const TensorView& bias, const TensorView& out,
         std::array<int64_t, 2> stride, std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation,
         int64_t groups, std::uintptr_t stream) {
        SpikeConv2dArgs a;
        a.spikes = spikes;
        a.weight = weight;
        a.bias = bias;
        a.out = out;
        a.conv = conv2d_params(stride, padding, dilation, groups);
        a.stream = reinterpret_cast<void*>(stream);
        spike_conv2d(a);
      },
      py::arg("spikes"), py::arg("weight"), py::arg("bias"), py::arg("out"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"), py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>());
  m.def(
      "spike_conv2d_weight_grad",
      [](const TensorView& spikes, const TensorView& grad_out, const TensorView& grad_weight,
         std::array<int64_t, 2> stride, std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation,
         int64_t groups, std::uintptr_t stream) {
        SpikeConv2dWeightGradArgs a;
        a.spikes = spikes;
        a.grad_out = grad_out;
        a.grad_weight = grad_weight;
        a.conv = conv2d_params(stride, padding, dilation, groups);
        a.stream = reinterpret_cast<void*>(stream);
        spike_conv2d_weight_grad(a);
      },
      py::arg("spikes"), py::arg("grad_out"), py::arg("grad_weight"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"), py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>());

  py::class_<LayerReport>(m, "LayerReport")
      .def_readonly("name", &LayerReport::name)
      .def_readonly("type", &LayerReport::type)
      .def_readonly("output_shape", &LayerReport::output_shape)
      .def_readonly("spike_input", &LayerReport::spike_input)
      .def_readonly("synaptic_ops", &LayerReport::synaptic_ops)
      .def_readonly("dense_macs", &LayerReport::dense_macs)
      .def_readonly("spikes", &LayerReport::spikes)
      .def_readonly("neuron_steps", &LayerReport::neuron_steps)
      .def_readonly("seconds", &LayerReport::seconds)
      .def_property_readonly("firing_rate", &LayerReport::firing_rate);

  // The C++ inference runtime. run() writes into caller-owned buffers (torch tensors' data pointers):
  // input [batch, *input_shape] float32, scores [batch, num_outputs] float32, predictions [batch] int64.
  py::class_<Model>(m, "Model")
      .def_static("load", &Model::load, py::arg("path"), py::call_guard<py::gil_scoped_release>())
      .def_static(
          "from_bytes",
          [](const py::bytes& data, const std::string& source) {
            const std::string bytes = data;
            py::gil_scoped_release release;
            return Model::from_buffer(bytes.data(), bytes.size(), source);
          },
          py::arg("data"), py::arg("source") = "<bytes>")
      .def_property_readonly("time_steps", &Model::time_steps)
      .def_property_readonly("encoding",
                             [](const Model& model) {
                               return model.encoding() == InputEncoding::kDirect ? "direct" : "poisson";
                             })
      .def_property_readonly("input_shape", &Model::input_shape)
      .def_property_readonly("num_outputs", &Model::num_outputs)
      .def("workspace_bytes", &Model::workspace_bytes, py::arg("batch"))
      .def(
          "to",
          [](Model& model, const std::string& type, int index) {
            if (type != "cpu" && type != "cuda") throw Error("Model.to: device must be cpu or cuda, got " + type);
            model.to(type == "cpu" ? Device::kCPU : Device::kCUDA, index);
          },
          py::arg("type"), py::arg("index") = 0, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("device",
                             [](const Model& model) {
                               py::gil_scoped_release release;  // waits for a run on another thread
                               return model.device() == Device::kCPU
                                          ? std::string("cpu")
                                          : "cuda:" + std::to_string(model.device_index());
                             })
      .def(
          "run_into",
          [](Model& model, std::uintptr_t input, int64_t batch, uint64_t seed, std::uintptr_t scores,
             std::uintptr_t predictions) {
            InferenceResult r = model.run(reinterpret_cast<const float*>(input), batch, seed);
            std::copy(r.scores.begin(), r.scores.end(), reinterpret_cast<float*>(scores));
            std::copy(r.predictions.begin(), r.predictions.end(), reinterpret_cast<int64_t*>(predictions));
          },
          py::arg("input"), py::arg("batch"), py::arg("seed"), py::arg("scores"), py::arg("predictions"),
          py::call_guard<py::gil_scoped_release>())
      // These wait for a run of the model on another thread (model.hpp): without the GIL, so other Python
      // threads go on meanwhile.
      .def_property_readonly("reports", py::cpp_function(&Model::reports, py::call_guard<py::gil_scoped_release>()))
      .def("reset_reports", &Model::reset_reports, py::call_guard<py::gil_scoped_release>())
      .def("summary", &Model::summary);

  m.attr("PACKED_TILE_N") = kPackedTileN;
  m.attr("CPU_DENSE_ABOVE_RATE") = kCpuDenseAboveRate;
  m.attr("CPU_DENSE_ABOVE_RATE_WEIGHT_GRADIENT") = kCpuDenseAboveRateWeightGradient;
  m.attr("SPIKE_GEMM_RATE_MIN_MACS") = kSpikeGemmRateMinMacs;
  m.attr("CUDA_TILED_ABOVE_RATE") = kCudaTiledAboveRate;
  m.attr("CUDA_TENSOR_CORE_ABOVE_RATE") = kCudaTensorCoreAboveRate;
  m.attr("CPU_CONV_DENSE_ABOVE_RATE") = kCpuConvDenseAboveRate;
  m.attr("CPU_CONV_DENSE_ABOVE_RATE_WEIGHT_GRADIENT") = kCpuConvDenseAboveRateWeightGradient;
  m.def("set_cpu_threads", &set_cpu_threads, py::arg("n"));
  m.def("cpu_threads", &cpu_threads);

  m.def("build_info", [] {
    const BuildInfo info = build_info();
    py::dict d;
    d["version"] = info.version;
    d["cpu_simd"] = info.cpu_simd;
    d["cpu_simd_compiled"] = info.cpu_simd_compiled;
    d["openmp"] = info.openmp;
    d["openmp_threads"] = info.openmp_threads;
    d["cuda"] = info.cuda;
    d["cuda_architectures"] = info.cuda_architectures;
    return d;
  });
}
