// Replays ONNX's backend test data (Debian's libonnx-testdata: node, pytorch-converted,
// pytorch-operator and simple tests) through kiln::onnx::load on a device and prints
// pass / fail / unsupported per test and per operator.
//
//   onnx_conformance [--data DIR] [--device D] [--expected FILE] [--write-expected FILE]
//                    [--markdown FILE] [--verbose]
//
// With --expected, exits 1 when a test listed there (one name a line, "suite/test") no
// longer passes: CI's regression guard. Values are compared as ONNX's backend runner
// does: |got - want| <= atol + rtol * |want| (rtol 1e-3, atol 1e-7), NaN equal to NaN.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "kiln/autograd.h"
#include "kiln/onnx.h"
#include "kiln/ops.h"
#include "onnx/defs/schema.h"
#include "onnx/onnx_pb.h"

namespace fs = std::filesystem;

namespace {

constexpr const char* kSuites[] = {"node", "pytorch-converted", "pytorch-operator", "simple"};
constexpr double kRtol = 1e-3, kAtol = 1e-7;

enum class Status { Pass, Fail, Unsupported };
const char* status_name(Status s) { return s == Status::Pass ? "pass" : s == Status::Fail ? "fail" : "unsupported"; }

struct Result {
  std::string suite, name, op;
  Status status = Status::Fail;
  std::string reason;
};

// Compares one output; an empty string means equal within tolerance.
std::string compare(const kiln::Tensor& got, const kiln::Tensor& want) {
  std::ostringstream os;
  if (got.dtype() != want.dtype()) {
    os << "dtype " << got.dtype() << ", expected " << want.dtype();
    return os.str();
  }
  if (got.shape() != want.shape()) {
    os << "shape " << kiln::shape_str(got.shape()) << ", expected " << kiln::shape_str(want.shape());
    return os.str();
  }
  if (!kiln::is_floating(want.dtype())) {
    const auto g = got.to_vector<int64_t>(), w = want.to_vector<int64_t>();
    for (size_t i = 0; i < g.size(); ++i) {
      if (g[i] != w[i]) {
        os << "element " << i << " is " << g[i] << ", expected " << w[i];
        return os.str();
      }
    }
    return "";
  }
  const auto g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(w[i]) && std::isnan(g[i])) continue;
    if (g[i] == w[i]) continue;  // infinities
    if (!(std::abs(g[i] - w[i]) <= kAtol + kRtol * std::abs(w[i]))) {
      os << "element " << i << " is " << g[i] << ", expected " << w[i];
      return os.str();
    }
  }
  return "";
}

std::vector<fs::path> numbered(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> files;
  for (int i = 0;; ++i) {
    const fs::path p = dir / (prefix + std::to_string(i) + ".pb");
    if (!fs::exists(p)) break;
    files.push_back(p);
  }
  return files;
}

// The operator a node test exercises, from its name: the longest run of leading name
// tokens that spells an ONNX operator ("test_reduce_sum_keepdims" -> ReduceSum).
std::string operator_of(const std::string& test, const std::map<std::string, std::string>& ops) {
  std::string key, best = "?";
  std::istringstream tokens(test.substr(5));  // drop "test_"
  std::string tok;
  while (std::getline(tokens, tok, '_')) {
    key += tok;
    const auto it = ops.find(key);
    if (it != ops.end()) best = it->second;
  }
  return best;
}

Result run_test(const fs::path& dir, kiln::Device device) {
  Result r;
  std::shared_ptr<kiln::onnx::Model> model;
  try {
    model = kiln::onnx::load((dir / "model.onnx").string());
    model->to(device);
  } catch (const kiln::Error& e) {
    r.status = Status::Unsupported;
    r.reason = e.what();
    return r;
  }
  try {
    kiln::NoGradGuard no_grad;
    int sets = 0;
    for (const auto& set : fs::directory_iterator(dir)) {
      if (!set.is_directory()) continue;
      ++sets;
      std::vector<kiln::Tensor> inputs;
      for (const auto& p : numbered(set.path(), "input_")) inputs.push_back(kiln::onnx::load_tensor(p.string()).to(device));
      const auto outputs = model->forward(inputs);
      const auto expected = numbered(set.path(), "output_");
      if (expected.size() != outputs.size()) {
        r.reason = "produced " + std::to_string(outputs.size()) + " outputs, expected " + std::to_string(expected.size());
        return r;
      }
      for (size_t i = 0; i < outputs.size(); ++i) {
        const std::string diff = compare(outputs[i].cpu(), kiln::onnx::load_tensor(expected[i].string()));
        if (!diff.empty()) {
          r.reason = set.path().filename().string() + " output " + std::to_string(i) + ": " + diff;
          return r;
        }
      }
    }
    if (sets == 0) {
      r.reason = "no test data sets";
      return r;
    }
  } catch (const kiln::Error& e) {
    r.reason = e.what();
    return r;
  }
  r.status = Status::Pass;
  return r;
}

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '|', '/');
  if (s.size() > 160) s = s.substr(0, 157) + "...";
  return s;
}

void write_markdown(const std::string& path, const std::vector<Result>& results) {
  struct Row { int pass = 0, fail = 0, unsupported = 0; std::string reason; };
  std::map<std::string, Row> by_op;
  std::map<std::string, Row> by_suite;
  for (const auto& r : results) {
    auto& suite = by_suite[r.suite];
    (r.status == Status::Pass ? suite.pass : r.status == Status::Fail ? suite.fail : suite.unsupported)++;
    if (r.suite != "node") continue;
    auto& row = by_op[r.op];
    (r.status == Status::Pass ? row.pass : r.status == Status::Fail ? row.fail : row.unsupported)++;
    if (r.status != Status::Pass && row.reason.empty()) row.reason = r.name + ": " + one_line(r.reason);
  }
  std::ofstream out(path);
  out << "| suite | pass | fail | unsupported |\n|---|---|---|---|\n";
  for (const auto& [s, row] : by_suite) out << "| " << s << " | " << row.pass << " | " << row.fail << " | " << row.unsupported << " |\n";
  out << "\n| operator | pass | fail | unsupported | first problem |\n|---|---|---|---|---|\n";
  for (const auto& [op, row] : by_op) {
    out << "| " << op << " | " << row.pass << " | " << row.fail << " | " << row.unsupported << " | " << row.reason << " |\n";
  }
  out << "\nModel tests (pytorch-converted, pytorch-operator, simple) that do not pass:\n\n";
  out << "| test | status | problem |\n|---|---|---|\n";
  for (const auto& r : results) {
    if (r.suite == "node" || r.status == Status::Pass) continue;
    out << "| " << r.suite << "/" << r.name << " | " << status_name(r.status) << " | " << one_line(r.reason) << " |\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = "/usr/share/libonnx-testdata/data", expected_file, write_file, markdown_file, device_name = "cpu",
              only;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--data") data = next();
    else if (a == "--device") device_name = next();
    else if (a == "--expected") expected_file = next();
    else if (a == "--write-expected") write_file = next();
    else if (a == "--markdown") markdown_file = next();
    else if (a == "--only") only = next();
    else if (a == "--verbose") verbose = true;
    else {
      std::cerr << "unknown option " << a << '\n';
      return 2;
    }
  }
  if (!fs::is_directory(data)) {
    std::cout << "SKIP: no ONNX test data at " << data << " (Debian's libonnx-testdata)\n";
    return 77;
  }
  const kiln::Device device = kiln::Device::parse(device_name);

  std::map<std::string, std::string> op_names;  // "reducesum" -> "ReduceSum"
  for (const auto& s : ONNX_NAMESPACE::OpSchemaRegistry::get_all_schemas()) {
    if (!s.domain().empty()) continue;
    std::string key = s.Name();
    std::transform(key.begin(), key.end(), key.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
    op_names[key] = s.Name();
  }

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Result> results;
  for (const char* suite : kSuites) {
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(fs::path(data) / suite)) {
      if (e.is_directory()) dirs.push_back(e.path());
    }
    std::sort(dirs.begin(), dirs.end());
    for (const auto& dir : dirs) {
      const std::string name = dir.filename().string();
      if (!only.empty() && name.find(only) == std::string::npos) continue;
      Result r = run_test(dir, device);
      r.suite = suite;
      r.name = name;
      r.op = std::string(suite) == "node" ? operator_of(name, op_names) : "";
      if (verbose || r.status == Status::Fail) {
        std::cout << status_name(r.status) << ' ' << suite << '/' << name;
        if (r.status != Status::Pass) std::cout << ": " << one_line(r.reason);
        std::cout << '\n';
      }
      results.push_back(std::move(r));
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::map<std::string, std::array<int, 3>> totals;
  for (const auto& r : results) totals[r.suite][int(r.status)]++;
  for (const auto& [s, t] : totals) {
    std::cout << s << ": " << t[0] << " pass, " << t[1] << " fail, " << t[2] << " unsupported\n";
  }
  std::cout << "(" << seconds << " s on " << device.str() << ")\n";

  if (!markdown_file.empty()) write_markdown(markdown_file, results);
  if (!write_file.empty()) {
    std::ofstream out(write_file);
    for (const auto& r : results) {
      if (r.status == Status::Pass) out << r.suite << '/' << r.name << '\n';
    }
  }
  if (!expected_file.empty()) {
    std::ifstream in(expected_file);
    if (!in) {
      std::cerr << "cannot read " << expected_file << '\n';
      return 2;
    }
    std::map<std::string, const Result*> by_name;
    for (const auto& r : results) by_name[r.suite + "/" + r.name] = &r;
    int regressions = 0;
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      const auto it = by_name.find(line);
      if (it == by_name.end()) {
        if (!only.empty()) continue;
        std::cout << "REGRESSION " << line << ": test not found\n";
        ++regressions;
      } else if (it->second->status != Status::Pass) {
        std::cout << "REGRESSION " << line << ": " << one_line(it->second->reason) << '\n';
        ++regressions;
      }
    }
    if (regressions > 0) {
      std::cout << regressions << " previously passing tests fail\n";
      return 1;
    }
    std::cout << "every previously passing test passes\n";
  }
  return 0;
}
