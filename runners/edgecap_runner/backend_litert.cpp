// LiteRT (TensorFlow Lite) backend through the TFLite C API (tensorflow/lite/c/c_api.h). The
// interpreter applies its default delegate, XNNPACK, in builds that include it (the default).
#include <tensorflow/lite/c/c_api.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "backend.h"

namespace edgecap {
namespace {

DType to_dtype(TfLiteType t, const std::string& what) {
  switch (t) {
    case kTfLiteFloat32: return DType::Float32;
    case kTfLiteInt32: return DType::Int32;
    case kTfLiteInt64: return DType::Int64;
    case kTfLiteUInt8: return DType::UInt8;
    case kTfLiteBool: return DType::Bool;
    default: throw std::runtime_error(what + " has TfLiteType " + std::to_string(t) + ", which edgecap_runner does not handle");
  }
}

TensorSpec spec_of(const TfLiteTensor* t, const std::string& what) {
  TensorSpec s{to_dtype(TfLiteTensorType(t), what), {}};
  for (int32_t d = 0; d < TfLiteTensorNumDims(t); ++d) s.shape.push_back(TfLiteTensorDim(t, d));
  return s;
}

// Collects the interpreter's error reports so a failure can name the op.
void report(void* user_data, const char* format, va_list args) {
  char buf[1024];
  std::vsnprintf(buf, sizeof buf, format, args);
  auto* log = static_cast<std::string*>(user_data);
  if (!log->empty()) *log += "; ";
  for (char* c = buf; *c; ++c) *log += *c == '\n' ? ' ' : *c;
}

class LiteRtBackend : public Backend {
 public:
  ~LiteRtBackend() override {
    if (interpreter_) TfLiteInterpreterDelete(interpreter_);
    if (options_) TfLiteInterpreterOptionsDelete(options_);
    if (model_) TfLiteModelDelete(model_);
  }

  const char* runtime() const override { return "litert"; }

  void load(const std::string& path, int threads) override {
    model_ = TfLiteModelCreateFromFileWithErrorReporter(path.c_str(), report, &log_);
    if (!model_) fail("cannot read the model");
    options_ = TfLiteInterpreterOptionsCreate();
    TfLiteInterpreterOptionsSetNumThreads(options_, threads);
    TfLiteInterpreterOptionsSetErrorReporter(options_, report, &log_);
    interpreter_ = TfLiteInterpreterCreate(model_, options_);
    if (!interpreter_) fail("cannot create the interpreter");
    if (TfLiteInterpreterAllocateTensors(interpreter_) != kTfLiteOk) fail("cannot allocate tensors");
    for (int32_t i = 0; i < TfLiteInterpreterGetInputTensorCount(interpreter_); ++i)
      specs_.push_back(spec_of(TfLiteInterpreterGetInputTensor(interpreter_, i), "input " + std::to_string(i)));
  }

  std::vector<TensorSpec> inputs() const override { return specs_; }

  void set_inputs(const std::vector<Tensor>& inputs) override {
    for (size_t i = 0; i < inputs.size(); ++i) {
      TfLiteTensor* t = TfLiteInterpreterGetInputTensor(interpreter_, static_cast<int32_t>(i));
      if (TfLiteTensorCopyFromBuffer(t, inputs[i].data.data(), inputs[i].data.size()) != kTfLiteOk)
        fail("cannot copy input " + std::to_string(i));
    }
  }

  void run() override {
    if (TfLiteInterpreterInvoke(interpreter_) != kTfLiteOk) fail("invoke failed");
  }

  std::vector<Tensor> outputs() override {
    std::vector<Tensor> result;
    for (int32_t i = 0; i < TfLiteInterpreterGetOutputTensorCount(interpreter_); ++i) {
      const TfLiteTensor* src = TfLiteInterpreterGetOutputTensor(interpreter_, i);
      TensorSpec s = spec_of(src, "output " + std::to_string(i));
      Tensor t = Tensor::zeros(s.dtype, s.shape);
      if (TfLiteTensorCopyToBuffer(src, t.data.data(), t.data.size()) != kTfLiteOk)
        fail("cannot copy output " + std::to_string(i));
      result.push_back(std::move(t));
    }
    return result;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error(log_.empty() ? what : what + ": " + log_);
  }

  std::string log_;
  TfLiteModel* model_ = nullptr;
  TfLiteInterpreterOptions* options_ = nullptr;
  TfLiteInterpreter* interpreter_ = nullptr;
  std::vector<TensorSpec> specs_;
};

}  // namespace

std::unique_ptr<Backend> make_litert_backend() { return std::make_unique<LiteRtBackend>(); }

}  // namespace edgecap
