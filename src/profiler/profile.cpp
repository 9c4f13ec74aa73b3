// Profile: the RAII session and its wait/warmup/active schedule.
#include <atomic>

#include "kiln/error.h"
#include "src/profiler/session.h"

namespace kiln::profiler {

namespace {
std::atomic<bool> g_profile_open{false};

constexpr int kWait = 0, kWarmup = 1, kActive = 2, kDone = 3;

void append(Trace& into, Trace&& from) {
  for (auto& r : from.ops) into.ops.push_back(std::move(r));
  for (auto& m : from.memory) into.memory.push_back(std::move(m));
  for (auto& s : from.steps) into.steps.push_back(s);
}
}  // namespace

Profile::Profile(ProfileOptions options) : options_(std::move(options)) {
  const Schedule& s = options_.schedule;
  KILN_CHECK(s.wait >= 0 && s.warmup >= 0 && s.active >= 0 && s.repeat >= 0, "profile",
             "schedule counts must be non-negative, got wait ", s.wait, ", warmup ", s.warmup, ", active ", s.active,
             ", repeat ", s.repeat);
  KILN_CHECK(s.active > 0 || (s.wait == 0 && s.warmup == 0 && s.repeat == 0), "profile",
             "a schedule with wait, warmup or repeat needs active > 0");
  bool expected = false;
  KILN_CHECK(g_profile_open.compare_exchange_strong(expected, true), "profile", "another profile is running");
  session::open(options_);
  if (phase_at(0) == kWarmup || phase_at(0) == kActive) begin_phase();
}

Profile::~Profile() {
  if (stopped_) return;
  if (recording()) session::close();
  g_profile_open = false;
}

int Profile::phase_at(int64_t step) const {
  const Schedule& s = options_.schedule;
  if (s.active == 0) return kActive;
  const int64_t cycle = int64_t(s.wait) + s.warmup + s.active;
  if (s.repeat > 0 && step >= cycle * s.repeat) return kDone;
  const int64_t pos = step % cycle;
  return pos < s.wait ? kWait : pos < s.wait + s.warmup ? kWarmup : kActive;
}

bool Profile::recording() const { return is_recording(); }

void Profile::begin_phase() {
  session::set_step(step_);
  session::begin_phase();
  step_begin_us_ = session::now_us();
}

void Profile::end_phase(bool keep) {
  Trace t = session::end_phase();
  t.steps = std::move(phase_steps_);
  phase_steps_.clear();
  if (!keep) return;
  if (options_.on_trace_ready) options_.on_trace_ready(std::move(t));
  else append(kept_, std::move(t));
}

void Profile::step() {
  KILN_CHECK(!stopped_, "profile", "step() after stop()");
  const int before = phase_at(step_);
  const double now = session::now_us();
  if (before == kActive) phase_steps_.push_back({step_, step_begin_us_, now});
  ++step_;
  const int after = phase_at(step_);
  const Schedule& s = options_.schedule;
  const bool cycle_ends = s.active > 0 && step_ % (int64_t(s.wait) + s.warmup + s.active) == 0;
  if ((before == kActive || before == kWarmup) && (after != before || cycle_ends)) end_phase(before == kActive);
  session::set_step(step_);
  step_begin_us_ = now;
  if ((after == kWarmup || after == kActive) && !is_recording()) begin_phase();
}

Trace Profile::stop() {
  KILN_CHECK(!stopped_, "profile", "stop() called twice");
  if (is_recording()) end_phase(phase_at(step_) == kActive);
  stopped_ = true;
  g_profile_open = false;
  Trace out = std::move(kept_);
  kept_ = {};
  return out;
}

}  // namespace kiln::profiler
