// ExecuTorch backend through the Module API: loads method "forward" of a .pte. The XNNPACK
// delegate and the CPU kernels register themselves when their libraries are linked (CMakeLists.txt).
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>

#include <cstring>
#include <stdexcept>

#include "backend.h"

#if __has_include(<executorch/extension/threadpool/threadpool.h>)
#include <executorch/extension/threadpool/threadpool.h>
#else
// The executorch pip wheel ships the thread pool library but not this header; declare the two
// exported functions used below (as in extension/threadpool/threadpool.h).
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool
#endif

namespace edgecap {
namespace {

using executorch::aten::ScalarType;
using executorch::extension::Module;
using executorch::runtime::Error;
using executorch::runtime::EValue;

void check(Error err, const std::string& what) {
  if (err != Error::Ok)
    throw std::runtime_error(what + " failed with ExecuTorch error " + std::to_string(static_cast<int>(err)) +
                             " (codes: runtime/core/error.h)");
}

DType to_dtype(ScalarType t, const std::string& what) {
  switch (t) {
    case ScalarType::Float: return DType::Float32;
    case ScalarType::Int: return DType::Int32;
    case ScalarType::Long: return DType::Int64;
    case ScalarType::Byte: return DType::UInt8;
    case ScalarType::Bool: return DType::Bool;
    default: throw std::runtime_error(what + " has ScalarType " + std::to_string(static_cast<int>(t)) + ", which edgecap_runner does not handle");
  }
}

ScalarType to_scalar_type(DType t) {
  switch (t) {
    case DType::Float32: return ScalarType::Float;
    case DType::Int32: return ScalarType::Int;
    case DType::Int64: return ScalarType::Long;
    case DType::UInt8: return ScalarType::Byte;
    case DType::Bool: return ScalarType::Bool;
  }
  return ScalarType::Float;
}

class ExecuTorchBackend : public Backend {
 public:
  const char* runtime() const override { return "executorch"; }

  void load(const std::string& path, int threads) override {
    // The thread pool (used by XNNPACK and the optimized kernels) is process-wide.
    if (auto* pool = executorch::extension::threadpool::get_threadpool())
      if (!pool->_unsafe_reset_threadpool(static_cast<uint32_t>(threads)))
        throw std::runtime_error("cannot resize the ExecuTorch thread pool to " + std::to_string(threads));
    module_ = std::make_unique<Module>(path, Module::LoadMode::MmapUseMlockIgnoreErrors);
    check(module_->load_method("forward"), "loading method forward");
    auto meta = module_->method_meta("forward");
    if (!meta.ok()) check(meta.error(), "reading method forward's metadata");
    for (size_t i = 0; i < meta->num_inputs(); ++i) {
      const std::string what = "input " + std::to_string(i);
      auto tag = meta->input_tag(i);
      if (!tag.ok() || *tag != executorch::runtime::Tag::Tensor) throw std::runtime_error(what + " is not a tensor");
      auto info = meta->input_tensor_meta(i);
      if (!info.ok()) check(info.error(), "reading " + what + "'s metadata");
      TensorSpec s{to_dtype(info->scalar_type(), what), {}};
      for (int32_t d : info->sizes()) s.shape.push_back(d);
      specs_.push_back(std::move(s));
    }
  }

  std::vector<TensorSpec> inputs() const override { return specs_; }

  void set_inputs(const std::vector<Tensor>& inputs) override {
    tensors_.clear();
    values_.clear();
    for (const Tensor& t : inputs) {
      std::vector<executorch::aten::SizesType> sizes(t.shape.begin(), t.shape.end());
      // Wraps the caller's buffer, which outlives the runs (see Backend).
      tensors_.push_back(executorch::extension::from_blob(const_cast<uint8_t*>(t.data.data()), sizes,
                                                          to_scalar_type(t.dtype)));
      values_.emplace_back(tensors_.back());
    }
  }

  void run() override {
    // Inputs are passed on every run (as Module::forward(inputs) does): set only once, a
    // non-delegated program's second run gave wrong outputs in testing.
    auto result = module_->execute("forward", values_);
    if (!result.ok()) check(result.error(), "executing forward");
    outputs_ = std::move(*result);
  }

  std::vector<Tensor> outputs() override {
    std::vector<Tensor> result;
    for (size_t i = 0; i < outputs_.size(); ++i) {
      const std::string what = "output " + std::to_string(i);
      if (!outputs_[i].isTensor()) throw std::runtime_error(what + " is not a tensor");
      const auto& src = outputs_[i].toTensor();
      std::vector<int64_t> shape(src.sizes().begin(), src.sizes().end());
      Tensor t = Tensor::zeros(to_dtype(src.scalar_type(), what), shape);
      if (t.data.size() != src.nbytes()) throw std::runtime_error(what + " has an unexpected size");
      if (!t.data.empty()) std::memcpy(t.data.data(), src.const_data_ptr(), t.data.size());
      result.push_back(std::move(t));
    }
    return result;
  }

 private:
  std::unique_ptr<Module> module_;
  std::vector<TensorSpec> specs_;
  std::vector<executorch::extension::TensorPtr> tensors_;
  std::vector<EValue> values_;
  std::vector<EValue> outputs_;
};

}  // namespace

std::unique_ptr<Backend> make_executorch_backend() { return std::make_unique<ExecuTorchBackend>(); }

}  // namespace edgecap
