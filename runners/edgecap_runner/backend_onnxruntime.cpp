// ONNX Runtime backend through the C API. Only functions present since ORT 1.0 are used, so any
// release's onnxruntime_c_api.h compiles this, and a newer libonnxruntime.so runs it.
#include <onnxruntime_c_api.h>

#include <cstring>
#include <stdexcept>

#include "backend.h"

namespace edgecap {
namespace {

const OrtApi* ort() {
  static const OrtApi* api = OrtGetApiBase()->GetApi(ORT_API_VERSION);
  if (!api) throw std::runtime_error("libonnxruntime is older than the headers this runner was built with");
  return api;
}

void check(OrtStatus* status) {
  if (!status) return;
  std::string msg = ort()->GetErrorMessage(status);
  ort()->ReleaseStatus(status);
  for (char& c : msg) c = c == '\n' ? ' ' : c;  // keep errors on one line
  throw std::runtime_error(msg);
}

DType to_dtype(ONNXTensorElementDataType t, const std::string& what) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return DType::Float32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return DType::Int32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return DType::Int64;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return DType::UInt8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return DType::Bool;
    default: throw std::runtime_error(what + " has ONNX element type " + std::to_string(t) + ", which edgecap_runner does not handle");
  }
}

ONNXTensorElementDataType to_onnx(DType t) {
  switch (t) {
    case DType::Float32: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    case DType::Int32: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    case DType::Int64: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
    case DType::UInt8: return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
    case DType::Bool: return ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL;
  }
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
}

// dtype and shape of a tensor type-and-shape info (not released here).
TensorSpec spec_of(const OrtTensorTypeAndShapeInfo* info, const std::string& what) {
  ONNXTensorElementDataType type;
  size_t rank;
  check(ort()->GetTensorElementType(info, &type));
  check(ort()->GetDimensionsCount(info, &rank));
  TensorSpec s{to_dtype(type, what), std::vector<int64_t>(rank)};
  check(ort()->GetDimensions(info, s.shape.data(), rank));
  return s;
}

class OnnxRuntimeBackend : public Backend {
 public:
  ~OnnxRuntimeBackend() override {
    release_values(inputs_);
    release_values(outputs_);
    if (memory_) ort()->ReleaseMemoryInfo(memory_);
    if (session_) ort()->ReleaseSession(session_);
    if (options_) ort()->ReleaseSessionOptions(options_);
    if (env_) ort()->ReleaseEnv(env_);
  }

  const char* runtime() const override { return "onnxruntime"; }

  void load(const std::string& path, int threads) override {
    check(ort()->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "edgecap_runner", &env_));
    check(ort()->CreateSessionOptions(&options_));
    check(ort()->SetIntraOpNumThreads(options_, threads));
    check(ort()->SetSessionGraphOptimizationLevel(options_, ORT_ENABLE_ALL));
    check(ort()->CreateSession(env_, path.c_str(), options_, &session_));
    check(ort()->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory_));

    OrtAllocator* alloc;
    check(ort()->GetAllocatorWithDefaultOptions(&alloc));
    size_t n_in, n_out;
    check(ort()->SessionGetInputCount(session_, &n_in));
    check(ort()->SessionGetOutputCount(session_, &n_out));
    for (size_t i = 0; i < n_in + n_out; ++i) {
      const bool is_input = i < n_in;
      const size_t k = is_input ? i : i - n_in;
      char* name;
      check(is_input ? ort()->SessionGetInputName(session_, k, alloc, &name)
                     : ort()->SessionGetOutputName(session_, k, alloc, &name));
      (is_input ? input_names_ : output_names_).emplace_back(name);
      check(ort()->AllocatorFree(alloc, name));
      if (!is_input) continue;

      const std::string what = "input " + std::to_string(k) + " (" + input_names_.back() + ")";
      OrtTypeInfo* type;
      check(ort()->SessionGetInputTypeInfo(session_, k, &type));
      const OrtTensorTypeAndShapeInfo* tensor = nullptr;
      OrtStatus* status = ort()->CastTypeInfoToTensorInfo(type, &tensor);
      try {
        check(status);
        if (!tensor) throw std::runtime_error(what + " is not a tensor");
        specs_.push_back(spec_of(tensor, what));
      } catch (...) {
        ort()->ReleaseTypeInfo(type);
        throw;
      }
      ort()->ReleaseTypeInfo(type);
    }
    for (const auto& n : input_names_) input_ptrs_.push_back(n.c_str());
    for (const auto& n : output_names_) output_ptrs_.push_back(n.c_str());
    outputs_.assign(n_out, nullptr);
  }

  std::vector<TensorSpec> inputs() const override { return specs_; }

  void set_inputs(const std::vector<Tensor>& inputs) override {
    release_values(inputs_);
    for (const Tensor& t : inputs) {
      OrtValue* v = nullptr;
      // ORT reads the caller's buffer in place; the tensors outlive the runs (see Backend).
      check(ort()->CreateTensorWithDataAsOrtValue(memory_, const_cast<uint8_t*>(t.data.data()), t.data.size(),
                                                  t.shape.data(), t.shape.size(), to_onnx(t.dtype), &v));
      inputs_.push_back(v);
    }
  }

  void run() override {
    release_values(outputs_);
    outputs_.assign(output_ptrs_.size(), nullptr);
    check(ort()->Run(session_, nullptr, input_ptrs_.data(), inputs_.data(), inputs_.size(), output_ptrs_.data(),
                     output_ptrs_.size(), outputs_.data()));
  }

  std::vector<Tensor> outputs() override {
    std::vector<Tensor> result;
    for (size_t i = 0; i < outputs_.size(); ++i) {
      const std::string what = "output " + std::to_string(i) + " (" + output_names_[i] + ")";
      int is_tensor = 0;
      if (!outputs_[i] || (check(ort()->IsTensor(outputs_[i], &is_tensor)), !is_tensor))
        throw std::runtime_error(what + " is not a tensor");
      OrtTensorTypeAndShapeInfo* info;
      check(ort()->GetTensorTypeAndShape(outputs_[i], &info));
      TensorSpec s;
      try {
        s = spec_of(info, what);
      } catch (...) {
        ort()->ReleaseTensorTypeAndShapeInfo(info);
        throw;
      }
      ort()->ReleaseTensorTypeAndShapeInfo(info);
      Tensor t = Tensor::zeros(s.dtype, s.shape);
      void* data;
      check(ort()->GetTensorMutableData(outputs_[i], &data));
      if (!t.data.empty()) std::memcpy(t.data.data(), data, t.data.size());
      result.push_back(std::move(t));
    }
    return result;
  }

 private:
  static void release_values(std::vector<OrtValue*>& values) {
    for (OrtValue* v : values)
      if (v) ort()->ReleaseValue(v);
    values.clear();
  }

  OrtEnv* env_ = nullptr;
  OrtSessionOptions* options_ = nullptr;
  OrtSession* session_ = nullptr;
  OrtMemoryInfo* memory_ = nullptr;
  std::vector<std::string> input_names_, output_names_;
  std::vector<const char*> input_ptrs_, output_ptrs_;
  std::vector<TensorSpec> specs_;
  std::vector<OrtValue*> inputs_, outputs_;
};

}  // namespace

std::unique_ptr<Backend> make_onnxruntime_backend() { return std::make_unique<OnnxRuntimeBackend>(); }

}  // namespace edgecap
