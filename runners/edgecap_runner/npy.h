// Reading and writing .npy files (format versions 1.0, 2.0 and 3.0), little-endian, C order,
// for the dtypes edgecap_runner handles: float32, int32, int64, uint8, bool.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "edgecap_runner assumes a little-endian target"
#endif

namespace edgecap {

enum class DType { Float32, Int32, Int64, UInt8, Bool };

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
    case DType::Bool: return "bool";
  }
  return "?";
}

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: case DType::Int32: return 4;
    case DType::Int64: return 8;
    case DType::UInt8: case DType::Bool: return 1;
  }
  return 0;
}

// "1x243x17x2"; a scalar (no dims) is "scalar"; a dynamic dim (< 0) is "?".
inline std::string shape_str(const std::vector<int64_t>& shape) {
  if (shape.empty()) return "scalar";
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += 'x';
    s += shape[i] < 0 ? std::string("?") : std::to_string(shape[i]);
  }
  return s;
}

inline int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// A dense C-order tensor held in host memory.
struct Tensor {
  DType dtype = DType::Float32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // numel(shape) * dtype_size(dtype) bytes

  static Tensor zeros(DType dtype, std::vector<int64_t> shape) {
    Tensor t{dtype, std::move(shape), {}};
    t.data.assign(static_cast<size_t>(numel(t.shape)) * dtype_size(dtype), 0);
    return t;
  }
};

namespace npy {

namespace detail {

inline const char* descr(DType t) {
  switch (t) {
    case DType::Float32: return "<f4";
    case DType::Int32: return "<i4";
    case DType::Int64: return "<i8";
    case DType::UInt8: return "|u1";
    case DType::Bool: return "|b1";
  }
  return "";
}

// The text after `'key':` in a header dict such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }
inline std::string value_of(const std::string& header, const std::string& key) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) throw std::runtime_error("header has no '" + key + "'");
  size_t colon = header.find(':', k);
  if (colon == std::string::npos) throw std::runtime_error("malformed header");
  size_t start = header.find_first_not_of(' ', colon + 1);
  if (start == std::string::npos) throw std::runtime_error("malformed header");
  size_t end;
  if (header[start] == '(') {
    end = header.find(')', start);
    if (end == std::string::npos) throw std::runtime_error("malformed shape");
    ++end;
  } else if (header[start] == '\'') {
    end = header.find('\'', start + 1);
    if (end == std::string::npos) throw std::runtime_error("malformed header");
    ++end;
  } else {
    end = header.find_first_of(",}", start);
  }
  return header.substr(start, end - start);
}

}  // namespace detail

// Reads a .npy file; throws std::runtime_error with a short reason.
inline Tensor read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open");
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0)
    throw std::runtime_error("not a .npy file");
  const uint8_t major = static_cast<uint8_t>(bytes[6]);
  size_t header_len, offset;
  if (major == 1) {
    header_len = static_cast<uint8_t>(bytes[8]) | static_cast<uint8_t>(bytes[9]) << 8;
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw std::runtime_error("truncated header");
    header_len = 0;
    for (int i = 3; i >= 0; --i) header_len = header_len << 8 | static_cast<uint8_t>(bytes[8 + i]);
    offset = 12;
  } else {
    throw std::runtime_error("unsupported .npy version " + std::to_string(major));
  }
  if (bytes.size() < offset + header_len) throw std::runtime_error("truncated header");
  const std::string header(bytes.data() + offset, header_len);
  offset += header_len;

  const std::string descr = detail::value_of(header, "descr");
  Tensor t;
  if (descr == "'<f4'") t.dtype = DType::Float32;
  else if (descr == "'<i4'") t.dtype = DType::Int32;
  else if (descr == "'<i8'") t.dtype = DType::Int64;
  else if (descr == "'|u1'" || descr == "'<u1'") t.dtype = DType::UInt8;
  else if (descr == "'|b1'" || descr == "'<b1'") t.dtype = DType::Bool;
  else throw std::runtime_error("unsupported dtype " + descr + " (want float32, int32, int64, uint8 or bool, little-endian)");
  if (detail::value_of(header, "fortran_order") != "False")
    throw std::runtime_error("Fortran-order arrays are not supported (save a C-order array)");

  const std::string shape = detail::value_of(header, "shape");  // "(1, 3)", "(3,)", "()"
  for (size_t i = 1; i + 1 < shape.size();) {
    size_t j = shape.find_first_of(",)", i);
    std::string num = shape.substr(i, j - i);
    num.erase(0, num.find_first_not_of(' '));
    num.erase(num.find_last_not_of(' ') + 1);
    if (!num.empty()) {
      if (num.find_first_not_of("0123456789") != std::string::npos) throw std::runtime_error("malformed shape " + shape);
      t.shape.push_back(std::stoll(num));
    }
    i = j + 1;
  }

  const size_t nbytes = static_cast<size_t>(numel(t.shape)) * dtype_size(t.dtype);
  if (bytes.size() - offset != nbytes)
    throw std::runtime_error("data is " + std::to_string(bytes.size() - offset) + " bytes but shape " +
                             shape_str(t.shape) + " " + dtype_name(t.dtype) + " needs " + std::to_string(nbytes));
  t.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(offset), bytes.end());
  return t;
}

// Writes a .npy file (version 1.0, or 2.0 if the header does not fit); throws std::runtime_error.
inline void write(const std::string& path, const Tensor& t) {
  std::string shape = "(";
  for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape[i]);
  shape += t.shape.size() == 1 ? ",)" : ")";
  std::string header = std::string("{'descr': '") + detail::descr(t.dtype) +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces and end with '\n' so that the data starts 64-byte aligned.
  const bool v2 = header.size() + 11 > 65535;
  const size_t prefix = v2 ? 12 : 10;
  header.append(63 - (prefix + header.size()) % 64, ' ');
  header += '\n';

  std::string head("\x93NUMPY", 6);
  head += static_cast<char>(v2 ? 2 : 1);
  head += '\0';
  for (size_t i = 0; i < (v2 ? 4u : 2u); ++i) head += static_cast<char>(header.size() >> (8 * i) & 0xff);

  std::ofstream f(path, std::ios::binary);
  f << head << header;
  f.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

}  // namespace npy
}  // namespace edgecap
