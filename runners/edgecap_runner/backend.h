// The interface each runtime implements. Backends report failures by throwing std::runtime_error
// with a one-line message (main prints it and exits 3).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "npy.h"

namespace edgecap {

struct TensorSpec {
  DType dtype;
  std::vector<int64_t> shape;  // a dynamic dim is -1
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* runtime() const = 0;  // "onnxruntime", "executorch" or "litert"
  virtual void load(const std::string& path, int threads) = 0;
  virtual std::vector<TensorSpec> inputs() const = 0;  // in the model's input order
  // Binds the inputs for the following run() calls (not timed); the tensors outlive those calls.
  virtual void set_inputs(const std::vector<Tensor>& inputs) = 0;
  virtual void run() = 0;  // one inference (timed)
  virtual std::vector<Tensor> outputs() = 0;  // copies of the last run's outputs
};

// Each is defined only when its backend is compiled in (EDGECAP_WITH_*).
std::unique_ptr<Backend> make_onnxruntime_backend();
std::unique_ptr<Backend> make_executorch_backend();
std::unique_ptr<Backend> make_litert_backend();

}  // namespace edgecap
