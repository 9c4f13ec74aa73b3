#pragma once
// CPU threading: how many threads kiln's parallel regions (its own loops and oneDNN's)
// use. The default is KILN_NUM_THREADS, else OMP_NUM_THREADS, else every core the process
// may run on. Idle threads wait passively (they sleep instead of spinning) unless
// OMP_WAIT_POLICY or GOMP_SPINCOUNT says otherwise, so a busy neighbour on the same cores
// does not make kiln collapse. docs/threading.md has the details.
namespace kiln {

// Threads for parallel regions started from the calling thread (as PyTorch's
// set_num_threads, this is OpenMP's per-thread setting: threads that run kiln ops keep
// the process default unless they call it too).
int get_num_threads();
void set_num_threads(int n);  // n >= 1, else a kiln::Error

}  // namespace kiln
