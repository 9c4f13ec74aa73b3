#pragma once
// The per-GPU metrics line `kiln monitor` prints each sample and `kiln info` once.
#include <string>

#include "kiln/gpu_monitor.h"

namespace kiln::cli {

std::string gpu_metrics_header();                        // "# gpu   sm%  mem% ..."
std::string gpu_metrics_row(const profiler::GpuMetrics& m);  // "-" for what the GPU does not report

}  // namespace kiln::cli
