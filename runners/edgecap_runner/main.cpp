// edgecap_runner: loads one model (.onnx, .pte or .tflite), feeds it .npy inputs (or zeros), times
// repeated runs and optionally writes the last run's outputs as .npy; or runs every sample folder
// of --samples DIR once, writing each one's outputs beside its inputs. Output format: README.md.
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "backend.h"

namespace {

using edgecap::DType;
using edgecap::Tensor;
using edgecap::TensorSpec;

constexpr int kBadUsage = 2;  // bad arguments, inputs or model file
constexpr int kRuntimeFailure = 3;

const char* kUsage =
    "usage: edgecap_runner --model PATH --threads N --warmup W --iterations I [--min-seconds S]\n"
    "                      [--input FILE.npy]... [--output-dir DIR] [--samples DIR]";

struct Exit {  // thrown to stop with a one-line message on stderr
  int code;
  std::string message;
};

struct Args {
  std::string model, output_dir, samples;
  std::vector<std::string> inputs;
  long long threads = -1, warmup = -1, iterations = -1;
  double min_seconds = 0;
};

long long parse_int(const std::string& flag, const std::string& v, long long min) {
  size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(v, &used);
  } catch (const std::exception&) {
  }
  if (used != v.size() || v.empty() || n < min)
    throw Exit{kBadUsage, flag + " wants an integer >= " + std::to_string(min) + ", got '" + v + "'"};
  return n;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage << "\n";
      std::exit(0);
    }
    if (i + 1 >= argc) throw Exit{kBadUsage, flag.rfind("--", 0) == 0 ? flag + " needs a value" : "unexpected argument '" + flag + "'"};
    const std::string v = argv[++i];
    if (flag == "--model") a.model = v;
    else if (flag == "--threads") a.threads = parse_int(flag, v, 1);
    else if (flag == "--warmup") a.warmup = parse_int(flag, v, 0);
    else if (flag == "--iterations") a.iterations = parse_int(flag, v, 1);
    else if (flag == "--input") a.inputs.push_back(v);
    else if (flag == "--output-dir") a.output_dir = v;
    else if (flag == "--samples") a.samples = v;
    else if (flag == "--min-seconds") {
      char* end = nullptr;
      a.min_seconds = std::strtod(v.c_str(), &end);
      if (v.empty() || *end || !(a.min_seconds >= 0))
        throw Exit{kBadUsage, "--min-seconds wants a number >= 0, got '" + v + "'"};
    } else {
      throw Exit{kBadUsage, "unknown option '" + flag + "'"};
    }
  }
  const char* missing = a.model.empty() ? "--model" : a.threads < 0 ? "--threads" : a.warmup < 0 ? "--warmup"
                        : a.iterations < 0 ? "--iterations" : nullptr;
  if (missing) throw Exit{kBadUsage, std::string(missing) + " is required (--help for usage)"};
  if (!a.samples.empty() && (!a.inputs.empty() || !a.output_dir.empty()))
    throw Exit{kBadUsage, "--samples takes the place of --input and --output-dir"};
  return a;
}

// The backend for the model's suffix, or an Exit naming the CMake option it needs.
std::unique_ptr<edgecap::Backend> backend_for(const std::string& model) {
  std::string ext = std::filesystem::path(model).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto missing = [&](const char* runtime, const char* option) {
    return Exit{kBadUsage, "model " + model + ": " + ext + " models need the " + runtime +
                               " backend, which this build lacks (rebuild with -D" + option + "=ON)"};
  };
  if (ext == ".onnx") {
#ifdef EDGECAP_WITH_ONNXRUNTIME
    return edgecap::make_onnxruntime_backend();
#else
    throw missing("ONNX Runtime", "EDGECAP_WITH_ONNXRUNTIME");
#endif
  }
  if (ext == ".pte") {
#ifdef EDGECAP_WITH_EXECUTORCH
    return edgecap::make_executorch_backend();
#else
    throw missing("ExecuTorch", "EDGECAP_WITH_EXECUTORCH");
#endif
  }
  if (ext == ".tflite") {
#ifdef EDGECAP_WITH_LITERT
    return edgecap::make_litert_backend();
#else
    throw missing("LiteRT", "EDGECAP_WITH_LITERT");
#endif
  }
  throw Exit{kBadUsage, "model " + model + ": unknown suffix '" + ext + "' (want .onnx, .pte or .tflite)"};
}

// Checks the given inputs against the model's, or makes zeros (a dynamic dim becomes 1).
std::vector<Tensor> make_inputs(const std::vector<std::string>& files, const std::vector<TensorSpec>& specs) {
  std::vector<Tensor> inputs;
  if (files.empty()) {
    for (const TensorSpec& s : specs) {
      std::vector<int64_t> shape = s.shape;
      for (int64_t& d : shape) d = d < 0 ? 1 : d;
      inputs.push_back(Tensor::zeros(s.dtype, shape));
    }
    return inputs;
  }
  if (files.size() != specs.size())
    throw Exit{kBadUsage, "got " + std::to_string(files.size()) + " input files but the model takes " +
                              std::to_string(specs.size()) + " inputs"};
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string where = "input " + std::to_string(i) + " (" + files[i] + "): ";
    Tensor t;
    try {
      t = edgecap::npy::read(files[i]);
    } catch (const std::exception& e) {
      throw Exit{kBadUsage, where + e.what()};
    }
    const TensorSpec& s = specs[i];
    if (t.dtype != s.dtype)
      throw Exit{kBadUsage, where + "dtype " + dtype_name(t.dtype) + " but the model takes " + dtype_name(s.dtype)};
    bool same = t.shape.size() == s.shape.size();
    for (size_t d = 0; same && d < t.shape.size(); ++d) same = s.shape[d] < 0 || s.shape[d] == t.shape[d];
    if (!same)
      throw Exit{kBadUsage, where + "shape " + edgecap::shape_str(t.shape) + " but the model takes " +
                                edgecap::shape_str(s.shape)};
    inputs.push_back(std::move(t));
  }
  return inputs;
}

long peak_rss_kb() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Writes the last run's outputs as DIR/out_<i>.npy and prints one "output" line each.
void write_outputs(edgecap::Backend& backend, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::vector<Tensor> outputs;
  try {
    outputs = backend.outputs();
  } catch (const std::exception& e) {
    throw Exit{kRuntimeFailure, std::string("outputs: ") + e.what()};
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    const std::string path = dir + "/out_" + std::to_string(i) + ".npy";
    try {
      edgecap::npy::write(path, outputs[i]);
    } catch (const std::exception& e) {
      throw Exit{kRuntimeFailure, "output " + std::to_string(i) + ": " + e.what()};
    }
    std::printf("output %zu %s %s %s\n", i, path.c_str(), edgecap::shape_str(outputs[i].shape).c_str(),
                dtype_name(outputs[i].dtype));
  }
}

// The input files of a sample folder: in_0.npy, in_1.npy, ... one per model input.
std::vector<std::string> sample_inputs(const std::string& dir, size_t count) {
  std::vector<std::string> files;
  for (size_t i = 0; i < count; ++i) files.push_back(dir + "/in_" + std::to_string(i) + ".npy");
  return files;
}

// --samples DIR: folders 0, 1, 2 ... each run once, in numeric order (outputs beside the inputs).
int run_samples(const Args& a, edgecap::Backend& backend, const std::vector<TensorSpec>& specs) {
  std::set<long long> ids;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(a.samples, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && !name.empty() && name.find_first_not_of("0123456789") == std::string::npos)
      ids.insert(std::stoll(name));
  }
  if (ec || ids.empty()) throw Exit{kBadUsage, "--samples " + a.samples + ": no sample folders (0, 1, ...)"};
  bool warmed = false;
  for (long long id : ids) {
    const std::string dir = a.samples + "/" + std::to_string(id);
    const std::vector<Tensor> inputs = make_inputs(sample_inputs(dir, specs.size()), specs);
    try {
      backend.set_inputs(inputs);
      for (long long i = 0; !warmed && i < a.warmup; ++i) backend.run();
      warmed = true;
      const auto t = std::chrono::steady_clock::now();
      backend.run();
      std::printf("iteration_ms %.3f\n", ms_since(t));
    } catch (const std::exception& e) {
      throw Exit{kRuntimeFailure, "run of sample " + dir + ": " + e.what()};
    }
    write_outputs(backend, dir);
  }
  std::printf("peak_rss_kb %ld\n", peak_rss_kb());
  return 0;
}

int run(int argc, char** argv) {
  const Args a = parse_args(argc, argv);
  auto backend = backend_for(a.model);
  if (!std::ifstream(a.model)) throw Exit{kBadUsage, "model " + a.model + ": cannot open"};
  std::printf("edgecap_runner version=1 runtime=%s model=%s threads=%lld\n", backend->runtime(), a.model.c_str(),
              a.threads);

  auto t0 = std::chrono::steady_clock::now();
  try {
    backend->load(a.model, static_cast<int>(a.threads));
  } catch (const std::exception& e) {
    throw Exit{kRuntimeFailure, "model " + a.model + ": " + e.what()};
  }
  std::printf("model_load_ms %.3f\n", ms_since(t0));

  std::vector<TensorSpec> specs;
  try {
    specs = backend->inputs();
  } catch (const std::exception& e) {
    throw Exit{kRuntimeFailure, "model " + a.model + ": " + e.what()};
  }
  if (!a.samples.empty()) return run_samples(a, *backend, specs);
  const std::vector<Tensor> inputs = make_inputs(a.inputs, specs);
  for (size_t i = 0; i < inputs.size(); ++i)
    std::printf("input %zu %s %s\n", i, edgecap::shape_str(inputs[i].shape).c_str(), dtype_name(inputs[i].dtype));
  std::fflush(stdout);

  try {
    backend->set_inputs(inputs);
    for (long long i = 0; i < a.warmup; ++i) backend->run();
    const auto start = std::chrono::steady_clock::now();
    for (long long i = 0; i < a.iterations || ms_since(start) < a.min_seconds * 1000; ++i) {
      const auto t = std::chrono::steady_clock::now();
      backend->run();
      std::printf("iteration_ms %.3f\n", ms_since(t));
    }
  } catch (const std::exception& e) {
    throw Exit{kRuntimeFailure, std::string("run: ") + e.what()};
  }

  if (!a.output_dir.empty()) write_outputs(*backend, a.output_dir);
  std::printf("peak_rss_kb %ld\n", peak_rss_kb());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const Exit& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "edgecap_runner: %s\n", e.message.c_str());
    return e.code;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "edgecap_runner: %s\n", e.what());
    return kRuntimeFailure;
  }
}
