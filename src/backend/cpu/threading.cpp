// kiln::set_num_threads / get_num_threads, and the process's OpenMP defaults.
//
// libgomp reads OMP_WAIT_POLICY, GOMP_SPINCOUNT and OMP_NUM_THREADS once, in its own
// initialiser, which runs before any initialiser of a library that links it; its default
// then is to spin for a while (300,000 rounds) at every barrier and between parallel
// regions. On a machine where another process is busy on the same cores, the spinning
// threads take the time slices the working threads need (a CNN training loop ran 4-5x
// slower than with one thread). Only the executable's .preinit_array runs earlier, and
// there setenv() does not last: libc's own initialiser, which runs next, resets environ
// to the process's original array. So the preinit entry writes into that array: it lends
// the slot of a variable no library reads at start-up (_, SHLVL, OLDPWD) to
// OMP_WAIT_POLICY=passive and turns KILN_NUM_THREADS's slot into OMP_NUM_THREADS (or
// rewrites OMP_NUM_THREADS's); kiln's constructor, which runs after every library's,
// gives the lent slot back and sets both variables with setenv (child processes inherit
// them). A user's OMP_WAIT_POLICY or GOMP_SPINCOUNT wins. Only a static libkiln linked
// into an executable can have a .preinit_array; other builds apply KILN_NUM_THREADS at
// first use, and passive waiting then needs OMP_WAIT_POLICY=passive in the environment.
#include "kiln/threading.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kiln/error.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace kiln {

namespace {

#ifndef KILN_THREAD_DEFAULTS_PREINIT
// KILN_NUM_THREADS as a positive count, or 0 when unset or not a positive integer.
int kiln_num_threads_env() {
  const char* s = std::getenv("KILN_NUM_THREADS");
  if (s == nullptr || *s == '\0') return 0;
  char* end = nullptr;
  const long n = std::strtol(s, &end, 10);
  return (*end == '\0' && n >= 1 && n <= 4096) ? int(n) : 0;
}
#endif

#ifdef KILN_THREAD_DEFAULTS_PREINIT
bool has_prefix(const char* s, const char* prefix) { return std::strncmp(s, prefix, std::strlen(prefix)) == 0; }

// KILN_NUM_THREADS's value in an environment array (getenv is not usable this early).
int kiln_num_threads_in(char** envp) {
  for (char** e = envp; *e; ++e)
    if (has_prefix(*e, "KILN_NUM_THREADS=")) {
      char* end = nullptr;
      const long n = std::strtol(*e + 17, &end, 10);
      return (*end == '\0' && end != *e + 17 && n >= 1 && n <= 4096) ? int(n) : 0;
    }
  return 0;
}

char g_wait_policy[] = "OMP_WAIT_POLICY=passive";
char g_num_threads[32] = "";
struct Lent {
  char** slot = nullptr;  // an environ slot lent to one of the strings above
  char* own = nullptr;    // what it held
};
Lent g_lent[2];

void lend(int i, char** slot, char* with) {
  g_lent[i] = {slot, *slot};
  *slot = with;
}

void preinit_openmp_defaults(int, char**, char** envp) {
  char **kiln_slot = nullptr, **omp_slot = nullptr;
  bool user_policy = false;
  for (char** e = envp; *e; ++e) {
    user_policy = user_policy || has_prefix(*e, "OMP_WAIT_POLICY=") || has_prefix(*e, "GOMP_SPINCOUNT=");
    if (has_prefix(*e, "KILN_NUM_THREADS=")) kiln_slot = e;
    if (has_prefix(*e, "OMP_NUM_THREADS=")) omp_slot = e;
  }
  if (const int n = kiln_num_threads_in(envp)) {
    std::snprintf(g_num_threads, sizeof g_num_threads, "OMP_NUM_THREADS=%d", n);
    lend(0, omp_slot ? omp_slot : kiln_slot, g_num_threads);
  }
  if (user_policy) return;
  for (const char* name : {"_=", "SHLVL=", "OLDPWD="})
    for (char** e = envp; *e; ++e)
      if (e != g_lent[0].slot && has_prefix(*e, name)) {
        lend(1, e, g_wait_policy);
        return;
      }
}
[[gnu::used, gnu::section(".preinit_array")]] void (*const kiln_preinit_openmp_defaults)(
    int, char**, char**) = preinit_openmp_defaults;

// After every library's initialiser (libgomp has read its settings): the lent slots get
// their variables back, and ours are set the ordinary way.
[[gnu::constructor]] void return_lent_slots() {
  for (Lent& l : g_lent)
    if (l.slot) *l.slot = l.own;
  if (g_lent[0].slot) ::setenv("OMP_NUM_THREADS", g_num_threads + 16, 1);
  if (g_lent[1].slot) ::setenv("OMP_WAIT_POLICY", "passive", 0);
}
#endif

// Without the preinit entry, KILN_NUM_THREADS still wins over OMP_NUM_THREADS for the
// thread that first calls get_num_threads() (the CPU backend does when it starts).
void apply_env_once() {
#if defined(_OPENMP) && !defined(KILN_THREAD_DEFAULTS_PREINIT)
  static const bool done = [] {
    if (const int n = kiln_num_threads_env()) omp_set_num_threads(n);
    return true;
  }();
  (void)done;
#endif
}

}  // namespace

int get_num_threads() {
  apply_env_once();
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void set_num_threads(int n) {
  KILN_CHECK(n >= 1, "set_num_threads", "expected a thread count >= 1, got ", n);
  apply_env_once();
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
}

}  // namespace kiln
