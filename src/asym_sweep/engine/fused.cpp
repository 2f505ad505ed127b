// The fused backward of the thesis' batch-scope rules: one call per layer instead of some
// fifteen Python-level calls (the selection, the gathered products, the gradient sink's writes).
//
// Every ATen call below is the one the pure-torch path makes (rules/thesis.py, engine/gradients.py,
// selection.py, autograd.py), in the same order and on the same shapes, so the gradients are
// the same bits; only the interpreter's cost between the calls goes (docs/performance.md, "The
// fused backward"). The per-example top-k calls the compiled helper's own function (rowtopk.cpp,
// handed over by address from the loaded helper), exactly as selection.topk_rows does.
#include <torch/extension.h>
#include <torch/csrc/autograd/graph_task.h>

#include <chrono>
#include <cstring>
#include <vector>
#include <cstdint>
#include <optional>
#include <tuple>

namespace {

using at::Tensor;

enum Kind : int64_t { TOPK = 1, PARTIAL = 2, COMPLETE = 3 };

// rowtopk.cpp's asym_topk_rows_f32, as the helper library exports it.
using RowTopk = int64_t (*)(const float*, float*, int64_t, int64_t, int64_t, int32_t, int32_t, int32_t, int64_t*);

struct HelperFlags {
  RowTopk fn = nullptr;         // null: torch.topk only (no helper)
  bool shares_threads = false;  // native.Helper.shares_torch_threads
  bool ties_agree = false;      // selection.native_ties_agree()
};

// selection.magnitude_keys
Tensor magnitude_keys(const Tensor& v, bool nonnegative) {
  Tensor a = nonnegative ? v : v.abs();
  return a.is_contiguous() ? a.view(at::kInt) : a;
}

// selection.topk_rows_torch
Tensor topk_rows_torch(const Tensor& v, int64_t k, bool nonnegative) {
  Tensor idx = std::get<1>(magnitude_keys(v, nonnegative).topk(k, -1, true, false));
  return at::zeros_like(v).scatter_(-1, idx, v.gather(-1, idx));
}

// native.applies
bool helper_applies(const Tensor& v) {
  return v.device().is_cpu() && v.scalar_type() == at::kFloat && v.dim() == 2 && v.is_contiguous() && v.size(0) > 0;
}

// selection.topk_rows: the k largest-magnitude entries of every row kept, the rest zero
Tensor topk_rows(const Tensor& v, int64_t k, bool nonnegative, const HelperFlags& h) {
  if (k >= v.size(-1)) return v;
  if (h.fn == nullptr || !helper_applies(v)) return topk_rows_torch(v, k, nonnegative);
  const int torch_threads = at::get_num_threads();
  const int n_threads = h.shares_threads ? torch_threads : 1;  // native.threads
  const bool resolve = h.ties_agree && n_threads == torch_threads;
  const int64_t rows = v.size(0), n = v.size(1);
  Tensor out = at::empty_like(v);
  Tensor left = at::empty({rows}, v.options().dtype(at::kLong));
  const int64_t n_left = h.fn(v.const_data_ptr<float>(), out.mutable_data_ptr<float>(), rows, n, k, nonnegative ? 1 : 0,
                              resolve ? 1 : 0, n_threads, left.mutable_data_ptr<int64_t>());
  left = left.slice(0, 0, n_left);
  if (n_left == rows) return topk_rows_torch(v, k, nonnegative);
  if (n_left > 0) out.index_copy_(0, left, topk_rows_torch(v.index_select(0, left), k, nonnegative));
  return out;
}

// selection.topk_columns: indices of the k columns of largest summed magnitude (undefined: all)
Tensor topk_columns(const Tensor& v, int64_t k, bool nonnegative) {
  if (k >= v.size(-1)) return Tensor();
  Tensor s = (nonnegative ? v : v.abs()).sum(0);
  return std::get<1>(s.topk(k, -1, true, false));
}

// Copies are exact, so where the tensors are plain (contiguous float32 on the CPU, int64 indices)
// the gathers and the sink's writes below are loops of their own: the same values as ATen's
// index_select / index_copy_ / index_fill_, whose per-element indexing cost 13-22 us for 40 rows
// of 784 floats (docs/performance.md, "The fused backward"). Sums and products stay ATen's: their
// summation order is the bits.
bool plain(const Tensor& v) { return v.device().is_cpu() && v.scalar_type() == at::kFloat && v.dim() == 2 && v.is_contiguous(); }
bool plain_index(const Tensor& idx) { return idx.device().is_cpu() && idx.scalar_type() == at::kLong && idx.dim() == 1 && idx.is_contiguous(); }

// selection.gather_cols / gather_rows (index_select)
Tensor gather_cols(const Tensor& v, const Tensor& idx) {
  if (!idx.defined()) return v;
  if (!plain(v) || !plain_index(idx)) return v.index_select(1, idx);
  const int64_t rows = v.size(0), n = v.size(1), k = idx.size(0);
  Tensor out = at::empty({rows, k}, v.options());
  const float* src = v.const_data_ptr<float>();
  const int64_t* ix = idx.const_data_ptr<int64_t>();
  float* dst = out.mutable_data_ptr<float>();
  for (int64_t j = 0; j < k; ++j) TORCH_CHECK(ix[j] >= 0 && ix[j] < n, "index out of range");
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < k; ++j) dst[r * k + j] = src[r * n + ix[j]];
  return out;
}
Tensor gather_rows(const Tensor& v, const Tensor& idx) {
  if (!idx.defined()) return v;
  if (!plain(v) || !plain_index(idx)) return v.index_select(0, idx);
  const int64_t n_rows = v.size(0), n = v.size(1), k = idx.size(0);
  Tensor out = at::empty({k, n}, v.options());
  const float* src = v.const_data_ptr<float>();
  const int64_t* ix = idx.const_data_ptr<int64_t>();
  float* dst = out.mutable_data_ptr<float>();
  for (int64_t i = 0; i < k; ++i) {
    TORCH_CHECK(ix[i] >= 0 && ix[i] < n_rows, "index out of range");
    std::memcpy(dst + i * n, src + ix[i] * n, sizeof(float) * n);
  }
  return out;
}

// selection.scatter_rows / scatter_cols
Tensor scatter_rows(const Tensor& block, const Tensor& idx, int64_t n_rows) {
  if (!idx.defined()) return block;
  std::vector<int64_t> shape(block.sizes().begin(), block.sizes().end());
  shape[0] = n_rows;
  return block.new_zeros(shape).index_copy_(0, idx, block);
}
Tensor scatter_cols(const Tensor& block, const Tensor& idx, int64_t n_cols) {
  if (!idx.defined()) return block;
  return block.new_zeros({block.size(0), n_cols}).index_copy_(1, idx, block);
}

// autograd._put
void put(Tensor& dest, const Tensor& rows, const Tensor& cols, const Tensor& block, bool accumulate) {
  if (!cols.defined()) {
    if (accumulate) dest.index_add_(0, rows, block); else dest.index_copy_(0, rows, block);
  } else if (dest.is_contiguous()) {
    Tensor flat = at::add(cols, rows.unsqueeze(1), dest.size(1)).view(-1);
    Tensor target = dest.view(-1);
    if (accumulate) target.scatter_add_(0, flat, block.reshape(-1)); else target.scatter_(0, flat, block.reshape(-1));
  } else {
    dest.index_put_({rows.unsqueeze(1), cols}, block, accumulate);
  }
}

// The buffer's row-major layout seen as rows of `width` floats (a bias is one float per row).
struct Rows {
  float* data;
  int64_t n_rows, width;
};
std::optional<Rows> plain_rows(Tensor& buf) {
  if (!buf.device().is_cpu() || buf.scalar_type() != at::kFloat || !buf.is_contiguous() || buf.dim() < 1 || buf.dim() > 2)
    return std::nullopt;
  return Rows{buf.mutable_data_ptr<float>(), buf.size(0), buf.dim() == 2 ? buf.size(1) : 1};
}

// A fresh write into a buffer that held `dirty` rows: zero the rows that leave, copy the block in
// (rows, and cols where the block is compact in both directions). The buffer ends as
// GradSink.write's index_fill_ then _put leave it: zeros but the block.
bool write_fresh(Tensor& buf, const Tensor& dirty, const Tensor& rows, const Tensor& block, const Tensor& cols) {
  auto b = plain_rows(buf);
  const bool block_ok = block.device().is_cpu() && block.scalar_type() == at::kFloat && block.is_contiguous();
  if (!b || !block_ok || !plain_index(dirty) || !plain_index(rows) || (cols.defined() && !plain_index(cols))) return false;
  const int64_t k = rows.size(0), width = cols.defined() ? cols.size(0) : b->width;
  if (block.numel() != k * width) return false;
  const int64_t* r = rows.const_data_ptr<int64_t>();
  const int64_t* d = dirty.const_data_ptr<int64_t>();
  std::vector<char> kept(b->n_rows, 0), was_dirty(b->n_rows, 0);
  for (int64_t i = 0; i < k; ++i) {
    TORCH_CHECK(r[i] >= 0 && r[i] < b->n_rows, "row index out of range");
    kept[r[i]] = 1;
  }
  for (int64_t i = 0; i < dirty.size(0); ++i) {
    TORCH_CHECK(d[i] >= 0 && d[i] < b->n_rows, "row index out of range");
    was_dirty[d[i]] = 1;
    if (!kept[d[i]]) std::memset(b->data + d[i] * b->width, 0, sizeof(float) * b->width);
  }
  const float* src = block.const_data_ptr<float>();
  if (!cols.defined()) {
    for (int64_t i = 0; i < k; ++i) std::memcpy(b->data + r[i] * b->width, src + i * width, sizeof(float) * width);
    return true;
  }
  const int64_t* c = cols.const_data_ptr<int64_t>();
  for (int64_t j = 0; j < width; ++j) TORCH_CHECK(c[j] >= 0 && c[j] < b->width, "column index out of range");
  for (int64_t i = 0; i < k; ++i) {
    float* row = b->data + r[i] * b->width;
    if (was_dirty[r[i]]) std::memset(row, 0, sizeof(float) * b->width);  // it holds last step's entries elsewhere
    for (int64_t j = 0; j < width; ++j) row[c[j]] = src[i * width + j];
  }
  return true;
}

// autograd.GradSink.write on one slot (buf, dirty): .grad set to buf, or added to
void sink_write(Tensor& param, Tensor& buf, Tensor& dirty, const Tensor& rows, const Tensor& block, const Tensor& cols) {
  Tensor& grad = param.mutable_grad();
  if (!grad.defined()) {
    if (!write_fresh(buf, dirty, rows, block, cols)) {
      buf.index_fill_(0, dirty, 0);
      put(buf, rows, cols, block, false);
    }
    dirty.set_(rows);
    grad = buf;
  } else {
    put(grad, rows, cols, block, true);
    if (grad.is_same(buf)) {
      Tensor all = at::cat({dirty, rows});
      dirty.set_(all.numel() <= buf.size(0) ? all : at::arange(buf.size(0), rows.options()));
    }
  }
}

// autograd._accumulates for loss.backward(): the engine runs every node and accumulates into every leaf.
bool engine_accumulates() {
  const auto* info = torch::autograd::get_current_graph_task_exec_info();
  return info != nullptr && info->empty();
}

struct Selection {
  Tensor rows, cols, xs, w_tilde;
};

// rules/thesis.py: TopK (SelectedSensitivities, batch scope), Partial and Complete (neurons="rows")
Selection select(int64_t kind, int64_t k, int64_t kx, bool x_each, bool nonnegative, const Tensor& g, const Tensor& x,
                 const Tensor& w, bool need_x, bool need_w, const HelperFlags& h) {
  Selection s;
  s.xs = x;
  if (kind == TOPK) {
    s.rows = topk_columns(g, k, false);
  } else if (kind == PARTIAL) {
    s.rows = topk_columns(g, k, false);
    if (need_w) {
      if (x_each) s.xs = topk_rows(x, kx, nonnegative, h); else s.cols = topk_columns(x, kx, nonnegative);
    }
  } else {  // COMPLETE: its inputs first (Complete._select_x), then the rows and W~
    if (need_w) {
      if (x_each) s.xs = topk_rows(x, kx, nonnegative, h); else s.cols = topk_columns(x, kx, nonnegative);
    }
    s.rows = topk_columns(g, k, false);
    if (need_x) s.w_tilde = topk_rows(gather_rows(w, s.rows), k, false, h);
  }
  return s;
}

// The layer's gradients: (grad x, grad W, grad b, seconds of selection). grad W and grad b come
// back undefined (None) where they went into the parameter's .grad through its sink slot.
std::tuple<Tensor, Tensor, Tensor, double> backward(
    int64_t kind, int64_t k, int64_t kx, bool x_each, bool nonnegative, const Tensor& g, const Tensor& x, const Tensor& w,
    bool need_x, bool need_w, bool need_b, std::optional<Tensor> weight, std::optional<Tensor> bias,
    std::optional<Tensor> w_buf, std::optional<Tensor> w_dirty, std::optional<Tensor> b_buf, std::optional<Tensor> b_dirty,
    int64_t helper_fn, bool shares_threads, bool ties_agree) {
  TORCH_CHECK(kind == TOPK || kind == PARTIAL || kind == COMPLETE, "asym_sweep fused backward: unknown rule kind ", kind);
  HelperFlags h{reinterpret_cast<RowTopk>(helper_fn), shares_threads, ties_agree};
  const auto start = std::chrono::steady_clock::now();
  Selection s = select(kind, k, kx, x_each, nonnegative, g, x, w, need_x, need_w, h);
  const double select_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // gradients.row_block_grads
  Tensor gc = gather_cols(g, s.rows);
  Tensor grad_x, grad_w, grad_b;
  if (need_x) grad_x = at::matmul(gc, s.w_tilde.defined() ? s.w_tilde : gather_rows(w, s.rows));
  if (need_w) grad_w = at::matmul(gc.t(), gather_cols(s.xs, s.cols));
  if (need_b) grad_b = gc.sum(0);

  // autograd._SparseLinearFunction.backward: into the sinks, or scattered to full size
  const bool sink = s.rows.defined() && weight.has_value() && engine_accumulates();
  const int64_t n_out = w.size(0), n_in = w.size(1);
  if (grad_w.defined()) {
    if (sink) {
      sink_write(*weight, *w_buf, *w_dirty, s.rows, grad_w, s.cols);
      grad_w = Tensor();
    } else {
      grad_w = scatter_rows(scatter_cols(grad_w, s.cols, n_in), s.rows, n_out);
    }
  }
  if (grad_b.defined()) {
    if (sink) {
      sink_write(*bias, *b_buf, *b_dirty, s.rows, grad_b, Tensor());
      grad_b = Tensor();
    } else {
      grad_b = scatter_rows(grad_b, s.rows, n_out);
    }
  }
  return {grad_x, grad_w, grad_b, select_s};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "asym_sweep's fused batch-scope backward (fused.cpp)";
  m.def("backward", &backward, "the gradients of one layer under top-k, partial or complete (batch scope)");
  m.attr("TOPK") = static_cast<int64_t>(TOPK);
  m.attr("PARTIAL") = static_cast<int64_t>(PARTIAL);
  m.attr("COMPLETE") = static_cast<int64_t>(COMPLETE);
}
