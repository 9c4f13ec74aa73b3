// kiln: the command-line tool. `kiln <command> [options]`; `kiln help` lists commands.
#include <cstring>
#include <functional>
#include <iostream>
#include <map>

#include "kiln/error.h"
#include "tools/commands.h"

namespace {
struct Command {
  std::function<int(const kiln::cli::Args&)> run;
  const char* help;
};

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> c = {
      {"info", {kiln::cli::cmd_info, "version, build options, devices and their memory"}},
      {"demo", {kiln::cli::cmd_demo, "a short tour of tensors on each available device"}},
      {"bench", {kiln::cli::cmd_bench, "benchmarks (spec §6.2) on a device: --device D --json FILE"}},
      {"train", {kiln::cli::cmd_train, "train the Fashion-MNIST CNN (the main job); --help for options"}},
      {"predict", {kiln::cli::cmd_predict, "classify a Fashion-MNIST test image with a saved model"}},
      {"launch", {kiln::cli::cmd_launch, "start the ranks of a distributed job (kiln launch --help)"}},
      {"run", {kiln::cli::cmd_run, "run an ONNX model on .npy/.safetensors inputs: MODEL --input F --device D"}},
      {"monitor", {kiln::cli::cmd_monitor, "per-GPU utilisation, memory, temperature: --interval S --count N"}},
  };
  return c;
}

int usage() {
  std::cout << "usage: kiln <command> [options]\n\ncommands:\n";
  for (const auto& [name, c] : commands()) std::cout << "  " << name << std::string(10 - name.size(), ' ') << c.help << '\n';
  return 2;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "help") || !std::strcmp(argv[1], "--help")) return usage();
  const auto it = commands().find(argv[1]);
  if (it == commands().end()) {
    std::cerr << "kiln: unknown command '" << argv[1] << "'\n";
    return usage();
  }
  try {
    return it->second.run(kiln::cli::Args(argv + 2, argv + argc));
  } catch (const kiln::Error& e) {
    std::cerr << "kiln " << argv[1] << ": " << e.what() << '\n';
    return 1;
  }
}
