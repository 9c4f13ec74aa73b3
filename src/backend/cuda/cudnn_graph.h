#pragma once
// A thin C++ layer over cuDNN 9's backend (graph) API, which has no C++ wrapper in
// Debian: owned descriptors, typed attribute setters, tensors and the few operations
// the fused attention graphs use, and an execution plan chosen by cuDNN's heuristics.
// Every call is checked; a failure names the op and the cuDNN call.
#include <cudnn.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace kiln::cuda::dnn {

// One backend descriptor, destroyed with its owner.
class Desc {
 public:
  Desc() = default;
  Desc(cudnnBackendDescriptorType_t type, const char* op);
  Desc(Desc&& o) noexcept : d_(o.d_) { o.d_ = nullptr; }
  Desc& operator=(Desc&& o) noexcept;
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  ~Desc();
  cudnnBackendDescriptor_t get() const { return d_; }

  Desc& set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count, const void* value);
  Desc& set_int(cudnnBackendAttributeName_t name, int64_t v) { return set(name, CUDNN_TYPE_INT64, 1, &v); }
  Desc& set_ints(cudnnBackendAttributeName_t name, const std::vector<int64_t>& v) {
    return set(name, CUDNN_TYPE_INT64, int64_t(v.size()), v.data());
  }
  Desc& set_type(cudnnBackendAttributeName_t name, cudnnDataType_t t) { return set(name, CUDNN_TYPE_DATA_TYPE, 1, &t); }
  Desc& set_bool(cudnnBackendAttributeName_t name, bool b);
  Desc& set_desc(cudnnBackendAttributeName_t name, const Desc& d);
  Desc& finalize();

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
  const char* op_ = "cudnn";
};

// The operation graph being built: tensors (by unique id) and operations, kept alive
// together because the plan refers to them.
class Graph {
 public:
  explicit Graph(const char* op) : op_(op) {}
  const char* op() const { return op_; }

  // A tensor [dims] with strides; virtual tensors live only inside the fused kernel;
  // by-value tensors are scalars passed from host memory at execution.
  const Desc& tensor(int64_t uid, cudnnDataType_t type, const std::vector<int64_t>& dims,
                     const std::vector<int64_t>& strides, bool is_virtual = false, bool by_value = false);
  // A virtual float32 tensor of packed row-major layout (or the given strides).
  const Desc& virt(const std::vector<int64_t>& dims, cudnnDataType_t type = CUDNN_DATA_FLOAT);
  const Desc& virt_strided(const std::vector<int64_t>& dims, const std::vector<int64_t>& strides,
                           cudnnDataType_t type);
  // A non-virtual float32 buffer the engine accumulates into in its own tiled order
  // (cuDNN's F16x16 reordering), as the attention backward's dQ accumulator is.
  const Desc& reordered_buffer(int64_t uid, const std::vector<int64_t>& dims, const std::vector<int64_t>& strides);

  void matmul(const Desc& a, const Desc& b, const Desc& c);
  void pointwise(cudnnPointwiseMode_t mode, const Desc& x, const Desc* b, const Desc& y, const Desc* t = nullptr,
                 int64_t axis = -1);
  void reduction(cudnnReduceTensorOp_t mode, const Desc& x, const Desc& y);
  // y: x's elements under y's dims and strides (a transposed view, say).
  void reshape(const Desc& x, const Desc& y);
  // One pass of the 2-D convolution y = conv(x, w) (cross-correlation, float
  // accumulation): its forward (writes y), backward data (writes x from y) or backward
  // filter (writes w from x and y).
  enum class ConvPass { Forward, BackwardData, BackwardFilter };
  void convolution(ConvPass pass, const Desc& x, const Desc& w, const Desc& y, const std::vector<int64_t>& padding,
                   const std::vector<int64_t>& stride, const std::vector<int64_t>& dilation);

  // Finalizes the graph and builds the first plan cuDNN's heuristics offer that
  // finalizes; false when no engine supports the graph (the caller falls back). With
  // time_plan, every candidate (up to max_candidates) is built and the one time_plan
  // measures fastest (milliseconds, run through execute()) is kept.
  bool build_plan(cudnnHandle_t handle, const std::function<double()>& time_plan = {}, int max_candidates = 12);
  int64_t workspace_bytes() const { return workspace_; }
  // Whether the graph declared the non-virtual tensor uid (so the run must bind it).
  bool uses(int64_t uid) const;
  // Runs the plan: uids[i] is bound to ptrs[i] (host pointers for by-value tensors).
  void execute(cudnnHandle_t handle, const std::vector<int64_t>& uids, const std::vector<void*>& ptrs,
               void* workspace) const;

 private:
  const char* op_;
  std::vector<std::unique_ptr<Desc>> keep_;  // tensors and operation parts
  std::vector<const Desc*> ops_;
  std::vector<int64_t> io_uids_;
  int64_t next_virtual_uid_ = 1000;
  Desc graph_, plan_;
  int64_t workspace_ = 0;
  const Desc& keep(Desc d);
};

}  // namespace kiln::cuda::dnn
