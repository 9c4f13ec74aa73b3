#pragma once
// Subcommands of the kiln CLI, one source file each.
#include <string>
#include <vector>

namespace kiln::cli {
using Args = std::vector<std::string>;
int cmd_info(const Args& args);   // cmd_info.cpp
int cmd_demo(const Args& args);   // cmd_demo.cpp
int cmd_bench(const Args& args);  // cmd_bench.cpp
int cmd_train(const Args& args);  // cmd_train.cpp: the main job
int cmd_predict(const Args& args);  // cmd_predict.cpp
int cmd_run(const Args& args);      // cmd_run.cpp: run an ONNX model
int cmd_monitor(const Args& args);  // cmd_monitor.cpp: GPU metrics through NVML
int cmd_launch(const Args& args);   // cmd_launch.cpp: start the ranks of a distributed job
}  // namespace kiln::cli
