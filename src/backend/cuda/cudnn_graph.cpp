// cuDNN backend-API helpers (see cudnn_graph.h).
#include "src/backend/cuda/cudnn_graph.h"

#include <cstdio>
#include <cstdlib>

#include "kiln/error.h"

namespace kiln::cuda::dnn {

namespace {

void check(cudnnStatus_t s, const char* call, const char* op) {
  if (s != CUDNN_STATUS_SUCCESS) KILN_FAIL(op, "cuDNN error in ", call, ": ", cudnnGetErrorString(s));
}

// KILN_CUDNN_DEBUG=1 prints why a graph found no plan (cuDNN's own log:
// CUDNN_LOGLEVEL_DBG=2 CUDNN_LOGDEST_DBG=stderr).
bool debug() {
  static const bool on = std::getenv("KILN_CUDNN_DEBUG") != nullptr;
  return on;
}
bool ok(cudnnStatus_t s, const char* what) {
  if (s != CUDNN_STATUS_SUCCESS && debug()) std::fprintf(stderr, "[cudnn graph] %s: %s\n", what, cudnnGetErrorString(s));
  return s == CUDNN_STATUS_SUCCESS;
}

std::vector<int64_t> packed_strides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) s[i - 1] = s[i] * dims[i];
  return s;
}

}  // namespace

Desc::Desc(cudnnBackendDescriptorType_t type, const char* op) : op_(op) {
  check(cudnnBackendCreateDescriptor(type, &d_), "cudnnBackendCreateDescriptor", op);
}

Desc& Desc::operator=(Desc&& o) noexcept {
  if (this != &o) {
    if (d_) cudnnBackendDestroyDescriptor(d_);
    d_ = o.d_;
    op_ = o.op_;
    o.d_ = nullptr;
  }
  return *this;
}

Desc::~Desc() {
  if (d_) cudnnBackendDestroyDescriptor(d_);
}

Desc& Desc::set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count,
                const void* value) {
  check(cudnnBackendSetAttribute(d_, name, type, count, value), "cudnnBackendSetAttribute", op_);
  return *this;
}

Desc& Desc::set_bool(cudnnBackendAttributeName_t name, bool b) {
  const bool v = b;
  return set(name, CUDNN_TYPE_BOOLEAN, 1, &v);
}

Desc& Desc::set_desc(cudnnBackendAttributeName_t name, const Desc& d) {
  cudnnBackendDescriptor_t raw = d.get();
  return set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw);
}

Desc& Desc::finalize() {
  check(cudnnBackendFinalize(d_), "cudnnBackendFinalize", op_);
  return *this;
}

const Desc& Graph::keep(Desc d) {
  keep_.push_back(std::make_unique<Desc>(std::move(d)));
  return *keep_.back();
}

const Desc& Graph::tensor(int64_t uid, cudnnDataType_t type, const std::vector<int64_t>& dims,
                          const std::vector<int64_t>& strides, bool is_virtual, bool by_value) {
  Desc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR, op_);
  t.set_int(CUDNN_ATTR_TENSOR_UNIQUE_ID, uid)
      .set_type(CUDNN_ATTR_TENSOR_DATA_TYPE, type)
      .set_ints(CUDNN_ATTR_TENSOR_DIMENSIONS, dims)
      .set_ints(CUDNN_ATTR_TENSOR_STRIDES, strides)
      .set_int(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, 16)
      .set_bool(CUDNN_ATTR_TENSOR_IS_VIRTUAL, is_virtual);
  if (by_value) t.set_bool(CUDNN_ATTR_TENSOR_IS_BY_VALUE, true);
  t.finalize();
  if (!is_virtual) io_uids_.push_back(uid);
  return keep(std::move(t));
}

const Desc& Graph::virt(const std::vector<int64_t>& dims, cudnnDataType_t type) {
  return tensor(next_virtual_uid_++, type, dims, packed_strides(dims), true);
}

const Desc& Graph::virt_strided(const std::vector<int64_t>& dims, const std::vector<int64_t>& strides,
                                cudnnDataType_t type) {
  return tensor(next_virtual_uid_++, type, dims, strides, true);
}

const Desc& Graph::reordered_buffer(int64_t uid, const std::vector<int64_t>& dims,
                                    const std::vector<int64_t>& strides) {
  Desc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR, op_);
  const cudnnBackendTensorReordering_t reorder = CUDNN_TENSOR_REORDERING_F16x16;
  t.set_int(CUDNN_ATTR_TENSOR_UNIQUE_ID, uid)
      .set_type(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_DATA_FLOAT)
      .set_ints(CUDNN_ATTR_TENSOR_DIMENSIONS, dims)
      .set_ints(CUDNN_ATTR_TENSOR_STRIDES, strides)
      .set_int(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, 16)
      .set_bool(CUDNN_ATTR_TENSOR_IS_VIRTUAL, false)
      .set(CUDNN_ATTR_TENSOR_REORDERING_MODE, CUDNN_TYPE_TENSOR_REORDERING_MODE, 1, &reorder)
      .finalize();
  io_uids_.push_back(uid);
  return keep(std::move(t));
}

void Graph::reshape(const Desc& x, const Desc& y) {
  Desc o(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, op_);
  o.set_desc(CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x).set_desc(CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y).finalize();
  ops_.push_back(&keep(std::move(o)));
}

void Graph::matmul(const Desc& a, const Desc& b, const Desc& c) {
  Desc mm(CUDNN_BACKEND_MATMUL_DESCRIPTOR, op_);
  mm.set_type(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_DATA_FLOAT).finalize();
  const Desc& m = keep(std::move(mm));
  Desc o(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, op_);
  o.set_desc(CUDNN_ATTR_OPERATION_MATMUL_ADESC, a)
      .set_desc(CUDNN_ATTR_OPERATION_MATMUL_BDESC, b)
      .set_desc(CUDNN_ATTR_OPERATION_MATMUL_CDESC, c)
      .set_desc(CUDNN_ATTR_OPERATION_MATMUL_DESC, m)
      .finalize();
  ops_.push_back(&keep(std::move(o)));
}

void Graph::pointwise(cudnnPointwiseMode_t mode, const Desc& x, const Desc* b, const Desc& y, const Desc* t,
                      int64_t axis) {
  Desc pw(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, op_);
  pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode)
      .set_type(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_DATA_FLOAT);
  if (axis >= 0) pw.set_int(CUDNN_ATTR_POINTWISE_AXIS, axis);
  pw.finalize();
  const Desc& p = keep(std::move(pw));
  Desc o(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, op_);
  o.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, p)
      .set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x)
      .set_desc(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y);
  if (b) o.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *b);
  if (t) o.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_TDESC, *t);
  o.finalize();
  ops_.push_back(&keep(std::move(o)));
}

void Graph::reduction(cudnnReduceTensorOp_t mode, const Desc& x, const Desc& y) {
  Desc rd(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, op_);
  rd.set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode)
      .set_type(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_DATA_FLOAT)
      .finalize();
  const Desc& r = keep(std::move(rd));
  Desc o(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, op_);
  o.set_desc(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x)
      .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y)
      .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_DESC, r)
      .finalize();
  ops_.push_back(&keep(std::move(o)));
}

void Graph::convolution(ConvPass pass, const Desc& x, const Desc& w, const Desc& y,
                        const std::vector<int64_t>& padding, const std::vector<int64_t>& stride,
                        const std::vector<int64_t>& dilation) {
  Desc cd(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, op_);
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  cd.set_type(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_DATA_FLOAT)
      .set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode)
      .set_int(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, int64_t(padding.size()))
      .set_ints(CUDNN_ATTR_CONVOLUTION_DILATIONS, dilation)
      .set_ints(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, stride)
      .set_ints(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, padding)
      .set_ints(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, padding)
      .finalize();
  const Desc& c = keep(std::move(cd));
  const float alpha = 1.f, beta = 0.f;
  // The three passes differ only in the operation type and its attribute names.
  struct Names {
    cudnnBackendDescriptorType_t type;
    cudnnBackendAttributeName_t x, w, y, conv, alpha, beta;
  };
  const Names n = pass == ConvPass::Forward
                      ? Names{CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
                              CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
                              CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
                              CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA}
                  : pass == ConvPass::BackwardData
                      ? Names{CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
                              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
                              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY,
                              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
                              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA}
                      : Names{CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR,
                              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X,
                              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
                              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
                              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
                              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA,
                              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA};
  Desc o(n.type, op_);
  o.set_desc(n.x, x)
      .set_desc(n.w, w)
      .set_desc(n.y, y)
      .set_desc(n.conv, c)
      .set(n.alpha, CUDNN_TYPE_FLOAT, 1, &alpha)
      .set(n.beta, CUDNN_TYPE_FLOAT, 1, &beta)
      .finalize();
  ops_.push_back(&keep(std::move(o)));
}

bool Graph::uses(int64_t uid) const {
  return std::find(io_uids_.begin(), io_uids_.end(), uid) != io_uids_.end();
}

bool Graph::build_plan(cudnnHandle_t handle, const std::function<double()>& time_plan, int max_candidates) {
  graph_ = Desc(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, op_);
  std::vector<cudnnBackendDescriptor_t> raw;
  for (const Desc* o : ops_) raw.push_back(o->get());
  graph_.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle)
      .set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, int64_t(raw.size()), raw.data());
  // A graph no engine recognises can already fail here: that is "unsupported", not an error.
  if (!ok(cudnnBackendFinalize(graph_.get()), "operation graph finalize")) return false;

  double best_ms = 0;
  int built = 0;
  for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, op_);
    heur.set_desc(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph_)
        .set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    if (!ok(cudnnBackendFinalize(heur.get()), "heuristics finalize")) continue;
    int64_t count = 0;
    if (!ok(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                     &count, nullptr),
            "heuristics result count"))
      continue;
    if (debug()) std::fprintf(stderr, "[cudnn graph] heuristics mode %d: %ld engine configs\n", int(mode), long(count));
    if (count == 0) continue;
    std::vector<Desc> cfgs;
    std::vector<cudnnBackendDescriptor_t> raw_cfgs;
    for (int64_t i = 0; i < count; ++i) {
      cfgs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, op_);
      raw_cfgs.push_back(cfgs.back().get());
    }
    int64_t got = 0;
    if (!ok(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count,
                                     &got, raw_cfgs.data()),
            "heuristics results"))
      continue;
    for (int64_t i = 0; i < got && built < max_candidates; ++i) {
      Desc plan(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, op_);
      cudnnBackendDescriptor_t cfg = raw_cfgs[size_t(i)];
      plan.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle)
          .set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg);
      if (!ok(cudnnBackendFinalize(plan.get()), "execution plan finalize")) continue;
      int64_t ws = 0, n = 0;
      check(cudnnBackendGetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n,
                                     &ws),
            "cudnnBackendGetAttribute(workspace)", op_);
      ++built;
      if (!time_plan) {
        plan_ = std::move(plan);
        workspace_ = ws;
        return true;
      }
      // Time this candidate as the current plan; keep it only when it beats the best.
      Desc previous = std::move(plan_);
      const int64_t previous_ws = workspace_;
      plan_ = std::move(plan);
      workspace_ = ws;
      double ms = -1;
      try {
        ms = time_plan();
      } catch (const Error&) {
        ms = -1;  // a candidate that fails to run is skipped
      }
      if (debug()) std::fprintf(stderr, "[cudnn graph] candidate %d: %.4f ms, workspace %ld\n", built, ms, long(ws));
      if (ms < 0 || (previous.get() && ms >= best_ms)) {
        plan_ = std::move(previous);
        workspace_ = previous_ws;
      } else {
        best_ms = ms;
      }
    }
  }
  return plan_.get() != nullptr;
}

void Graph::execute(cudnnHandle_t handle, const std::vector<int64_t>& uids, const std::vector<void*>& ptrs,
                    void* workspace) const {
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, op_);
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, int64_t(uids.size()), uids.data())
      .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, int64_t(ptrs.size()), ptrs.data())
      .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace)
      .finalize();
  check(cudnnBackendExecute(handle, plan_.get(), pack.get()), "cudnnBackendExecute", op_);
}

}  // namespace kiln::cuda::dnn
