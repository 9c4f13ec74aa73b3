#pragma once
// The recording state shared by the profiler's files: per-thread record buffers, the
// device marks of the current phase, and collection into a Trace.
#include <cstdint>

#include "kiln/profiler.h"

namespace kiln::profiler::session {

double now_us();                            // microseconds since the profile started
void open(const ProfileOptions& options);   // a profile starts: time zero, options
void close();                               // the profile ends: every record dropped
void begin_phase();                         // recording starts: device time zero per device
Trace end_phase();                          // recording stops: the phase's records, resolved
void set_step(int64_t step);                // the step new records belong to

}  // namespace kiln::profiler::session
