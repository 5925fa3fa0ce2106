// CPU kernel of the accumulate-only spike GEMM: out[m, :] = bias + sum of rows[k, :] over the spikes of row m.
//
// Event-driven: a first pass lists the spiking columns of every row (CSR, 4 bytes per spike), a second pass
// adds the selected rows. The second pass walks the output in column tiles of kTileN floats: a tile's slice
// of `rows` ([K, kTileN], K*256 bytes) is shared by all M rows of the batch, so it is read from memory once
// and then from cache, while the M rows' sums live in registers. Tiles (and, for outputs narrower than a tile
// per thread, ranges of rows) run in parallel with OpenMP.
// With row-major rows the slice is K pieces of 256 bytes, one per page once N >= 1024, and the TLB misses
// dominate; the packed layout (RowsLayout::kPacked) makes the slice contiguous. Rows given transposed
// (RowsLayout::kTransposed, a linear layer's weight as it lies) are packed a tile at a time into a scratch
// buffer that the tile's task then reads from cache, or, for few spikes, summed from directly (gather_columns).
// An output of one tile (N <= 64) skips the list: each spike adds one to four vectors there, about what
// listing it costs (see one_tile).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "backend.hpp"
#include "cpu/simd.hpp"
#include "spikeops/spike_gemm.hpp"

namespace spikeops {
namespace cpu {

// Also used by the model runtime (backend.hpp).
SPIKEOPS_CPU_CLONES int64_t count_spikes(const uint8_t* row, int64_t K) {
  int64_t n = 0;
  for (int64_t k = 0; k < K; ++k) n += row[k] != 0;
  return n;
}

namespace {

constexpr int kTileN = kPackedTileN;  // four 16-float vectors
constexpr int kFlushRows = 64;        // see TileRowWriter
// Below this many spike bytes (or tiles) threads cost more than they save.
constexpr int64_t kMinParallelBytes = 1 << 16;

// The rows of each part when M output rows are split into about `parts`: a multiple of kFlushRows (the
// transposed writer's block), so that parts never share one.
int64_t part_rows(int64_t M, int64_t parts) {
  const int64_t rows = (M + parts - 1) / parts;
  return (rows + kFlushRows - 1) / kFlushRows * kFlushRows;
}

struct Plan {
  const uint8_t* spikes;
  const float* rows;
  const float* bias;
  void* out;
  DType out_dtype;
  bool out_transposed;
  bool stream_out;  // write float32 output with non-temporal stores (see flush_transposed)
  int64_t M, K, N;
  // rows[k, n0 + j] is at rows[tile_stride * (n0 / kTileN) + row_stride * k + j], unless rows_transposed:
  // then rows is [N, K] row-major and each task packs its tile (pack_tile).
  int64_t tile_stride, row_stride;
  bool rows_transposed;
  std::vector<int64_t> begin;  // row m's spike columns are idx[begin[m] : begin[m] + count[m]]
  std::vector<int64_t> count;
  std::vector<int32_t> idx;
};

// Bit j set where p[j] != 0, for j < n <= 64.
SPIKEOPS_CPU_INLINE uint64_t nonzero_mask(const uint8_t* p, int64_t n) {
  if (n == 64) return nonzero_mask64(p);
  uint64_t mask = 0;
  for (int64_t j = 0; j < n; ++j) mask |= uint64_t(p[j] != 0) << j;
  return mask;
}

// Writes the columns of the nonzero bytes of row[0:K] to idx and returns how many. 64 bytes at a time become
// a 64-bit mask whose set bits are listed, so the only unpredictable branch is one loop exit per 64 bytes
// (a branch per 8 bytes is taken or not at random at typical firing rates, and its mispredictions dominate).
SPIKEOPS_CPU_CLONES int64_t list_spikes(const uint8_t* row, int64_t K, int32_t* idx) {
  int64_t n = 0;
  for (int64_t k = 0; k < K; k += 64) {
    for (uint64_t mask = nonzero_mask(row + k, std::min<int64_t>(64, K - k)); mask != 0; mask &= mask - 1) {
      idx[n++] = static_cast<int32_t>(k + __builtin_ctzll(mask));
    }
  }
  return n;
}

// out[n, m0 : m0 + n_rows] = values[0 : n_rows] of a transposed output. A large float32 output (bigger than the
// caches, such as a 64 MB weight gradient) is written with non-temporal stores: a tile writes 64 rows of out
// that are M floats apart, and ordinary stores first read each line (the write-allocate doubles the traffic)
// and then evict one another (rows M * 4 bytes apart share cache sets). Streaming them avoids both.
SPIKEOPS_CPU_INLINE void flush_transposed(const Plan& p, int64_t at, int n_rows, const float* values) {
#if defined(__SSE2__)
  float* dst = static_cast<float*>(p.out) + at;
  if (p.stream_out && n_rows % 4 == 0 && reinterpret_cast<std::uintptr_t>(dst) % 16 == 0) {
    for (int i = 0; i < n_rows; i += 4) _mm_stream_ps(dst + i, _mm_load_ps(values + i));
    return;
  }
#endif
  store_row(p.out_dtype, p.out, at, n_rows, values);
}

#if SPIKEOPS_HAVE_VECTOR_EXT
// acc[0 : 16 V] = sum of the tile's rows idx[0 : count], V vectors of 16 columns each. Two independent sets of
// accumulators (even and odd spikes) hide the latency of the adds.
template <int V>
SPIKEOPS_CPU_INLINE void add_selected_rows(const float* tile, int64_t stride, const int32_t* idx, int64_t count,
                                           float* acc) {
  Vec16 a[V] = {}, b[V] = {};
  int64_t i = 0;
  for (; i + 2 <= count; i += 2) {
    const Vec16* r = reinterpret_cast<const Vec16*>(tile + idx[i] * stride);
    const Vec16* q = reinterpret_cast<const Vec16*>(tile + idx[i + 1] * stride);
    for (int v = 0; v < V; ++v) a[v] += r[v];
    for (int v = 0; v < V; ++v) b[v] += q[v];
  }
  if (i < count) {
    const Vec16* r = reinterpret_cast<const Vec16*>(tile + idx[i] * stride);
    for (int v = 0; v < V; ++v) a[v] += r[v];
  }
  Vec16* out = reinterpret_cast<Vec16*>(acc);
  for (int v = 0; v < V; ++v) out[v] = a[v] + b[v];
}
#endif

// Writes the output rows of the column tile [n0, n0 + nt) as they are finished, in increasing m from m_begin:
// the bias added, then stored, or for a transposed output gathered column-major in t_buf (16 KB) so that each
// output row (a column of the tile) receives kFlushRows adjacent values at once, four cache lines, instead of
// kTileN scattered single floats per row. 64 rows measured best of 16, 64 and 128 on the hosts tried.
class TileRowWriter {
 public:
  TileRowWriter(const Plan& p, int64_t n0, int nt, int64_t m_begin) : p_(p), n0_(n0), nt_(nt), m_begin_(m_begin) {}

  // acc[0 : nt] is output row m (the bias is added in place); `last`: the part's last row.
  void put(int64_t m, float* acc, bool last) {
    if (p_.bias != nullptr) {
      for (int j = 0; j < nt_; ++j) acc[j] += p_.bias[n0_ + j];
    }
    if (!p_.out_transposed) {
      store_row(p_.out_dtype, p_.out, m * p_.N + n0_, nt_, acc);
      return;
    }
    const int slot = static_cast<int>((m - m_begin_) % kFlushRows);
    for (int j = 0; j < nt_; ++j) t_buf_[j][slot] = acc[j];
    if (slot == kFlushRows - 1 || last) {
      for (int j = 0; j < nt_; ++j) flush_transposed(p_, (n0_ + j) * p_.M + m - slot, slot + 1, t_buf_[j]);
    }
  }

  ~TileRowWriter() {
#if defined(__SSE2__)
    if (p_.stream_out) _mm_sfence();  // the streamed stores are visible before the part counts as done
#endif
  }

 private:
  const Plan& p_;
  const int64_t n0_;
  const int nt_;
  const int64_t m_begin_;
  alignas(64) float t_buf_[kTileN][kFlushRows];
};

// tile[k * kTileN + j] = rows_t[(n0 + j) * K + k] for j < nt, zero for nt <= j < kTileN: the column tile at n0
// of rows given as their [N, K] transpose, in the packed layout. Blocks of kBlockK columns of rows_t, so that
// the nt source lines in flight and the block's tile rows stay in L1.
SPIKEOPS_CPU_CLONES void pack_tile(const float* rows_t, int64_t K, int64_t n0, int nt, float* tile) {
  constexpr int64_t kBlockK = 16;
  for (int64_t k0 = 0; k0 < K; k0 += kBlockK) {
    const int64_t kb = std::min(kBlockK, K - k0);
    float* dst = tile + k0 * kTileN;
    for (int j = 0; j < nt; ++j) {
      const float* src = rows_t + (n0 + j) * K + k0;
      for (int64_t k = 0; k < kb; ++k) dst[k * kTileN + j] = src[k];
    }
    for (int64_t k = 0; k < kb; ++k) {
      for (int j = nt; j < kTileN; ++j) dst[k * kTileN + j] = 0.0f;
    }
  }
}

// Output rows [m_begin, m_end) of the column tile [n0, n0 + nt), from the listed spikes. `scratch` holds
// K * kTileN floats where p.rows_transposed (the tile is packed there first).
SPIKEOPS_CPU_CLONES void accumulate_tile(const Plan& p, int64_t n0, int nt, int64_t m_begin, int64_t m_end,
                                         float* scratch) {
  alignas(64) float acc[kTileN];
  TileRowWriter writer(p, n0, nt, m_begin);
  const float* tile = p.rows + p.tile_stride * (n0 / kTileN);
  if (p.rows_transposed) {
    pack_tile(p.rows, p.K, n0, nt, scratch);
    tile = scratch;
  }
  const int64_t stride = p.rows_transposed ? kTileN : p.row_stride;
  // A packed tile is zero padded, so a partial one can take the vector path too, with just the vectors that
  // hold its nt columns (a 10-column tile adds one vector per spike, not four).
  const bool vectors = nt == kTileN || stride == kTileN;
  for (int64_t m = m_begin; m < m_end; ++m) {
    const int32_t* idx = p.idx.data() + p.begin[m];
    const int64_t count = p.count[m];
#if SPIKEOPS_HAVE_VECTOR_EXT
    static_assert(kTileN == 4 * 16, "a tile is four vectors");
    if (vectors) {
      switch ((nt + 15) / 16) {
        case 1: add_selected_rows<1>(tile, stride, idx, count, acc); break;
        case 2: add_selected_rows<2>(tile, stride, idx, count, acc); break;
        case 3: add_selected_rows<3>(tile, stride, idx, count, acc); break;
        default: add_selected_rows<4>(tile, stride, idx, count, acc); break;
      }
    } else
#endif
    {
      for (int j = 0; j < nt; ++j) acc[j] = 0.0f;
      for (int64_t i = 0; i < count; ++i) {
        const float* r = tile + idx[i] * stride;
        for (int j = 0; j < nt; ++j) acc[j] += r[j];
      }
    }
    writer.put(m, acc, m == m_end - 1);
  }
}

// Output columns [n_begin, n_end) summed straight from rows given transposed ([N, K]): out[m, n] gathers
// rows_t[n, k] over the listed spikes k of row m. For few spikes against a wide weight (a small batch at a low
// rate), where packing would read all N * K weights to use total * N of them.
SPIKEOPS_CPU_CLONES void gather_columns(const Plan& p, int64_t n_begin, int64_t n_end) {
  for (int64_t n = n_begin; n < n_end; ++n) {
    const float* w = p.rows + n * p.K;
    const float b = p.bias != nullptr ? p.bias[n] : 0.0f;
    for (int64_t m = 0; m < p.M; ++m) {
      const int32_t* idx = p.idx.data() + p.begin[m];
      float sum = 0.0f;
      for (int64_t i = 0; i < p.count[m]; ++i) sum += w[idx[i]];
      sum += b;
      store_row(p.out_dtype, p.out, p.out_transposed ? n * p.M + m : m * p.N + n, 1, &sum);
    }
  }
}

#if SPIKEOPS_HAVE_VECTOR_EXT
// ---- Products whose output is one column tile (N <= 64, a classifier's) ----
// Each spike there adds one to four vectors, about as much work as listing it, so the spikes are added as the
// masks of their bytes are read, in one pass, with no list.

// acc[0 : 16 V] = the sum of the tile's rows k where row[k] != 0, k < K; two sets of accumulators take the
// spikes of each 64 bytes in turn.
template <int V>
SPIKEOPS_CPU_INLINE void add_spiking_rows(const float* tile, int64_t stride, const uint8_t* row, int64_t K,
                                          float* acc) {
  Vec16 a[V] = {}, b[V] = {};
  for (int64_t k0 = 0; k0 < K; k0 += 64) {
    uint64_t mask = nonzero_mask(row + k0, std::min<int64_t>(64, K - k0));
    const float* chunk = tile + k0 * stride;
    while (mask != 0) {
      const Vec16* r = reinterpret_cast<const Vec16*>(chunk + __builtin_ctzll(mask) * stride);
      mask &= mask - 1;
      for (int v = 0; v < V; ++v) a[v] += r[v];
      if (mask == 0) break;
      const Vec16* q = reinterpret_cast<const Vec16*>(chunk + __builtin_ctzll(mask) * stride);
      mask &= mask - 1;
      for (int v = 0; v < V; ++v) b[v] += q[v];
    }
  }
  Vec16* out = reinterpret_cast<Vec16*>(acc);
  for (int v = 0; v < V; ++v) out[v] = a[v] + b[v];
}

// Row-major spikes: output rows [m_begin, m_end), each from its own spike bytes.
template <int V>
SPIKEOPS_CPU_INLINE void one_tile_rows(const Plan& p, int64_t m_begin, int64_t m_end) {
  alignas(64) float acc[kTileN];
  TileRowWriter writer(p, 0, static_cast<int>(p.N), m_begin);
  for (int64_t m = m_begin; m < m_end; ++m) {
    add_spiking_rows<V>(p.rows, p.row_stride, p.spikes + m * p.K, p.K, acc);
    writer.put(m, acc, m == m_end - 1);
  }
}

// Column-major spikes (memory row k holds column k of every output row, as the weight gradient's S^T): output
// rows [m_begin, m_end) are summed in `sums` ([m_end - m_begin, 16 V], zeroed here) by scattering: the tile's
// row k, loaded once, is added to the sums of the rows its spikes reach. No transposition of the spikes.
template <int V>
SPIKEOPS_CPU_INLINE void one_tile_columns(const Plan& p, int64_t m_begin, int64_t m_end, float* sums) {
  Vec16* s = reinterpret_cast<Vec16*>(sums);
  for (int64_t i = 0; i < (m_end - m_begin) * V; ++i) s[i] = Vec16{};
  for (int64_t k = 0; k < p.K; ++k) {
    const uint8_t* column = p.spikes + k * p.M;  // validated: column-major spikes have strides (1, M)
    const Vec16* r = reinterpret_cast<const Vec16*>(p.rows + k * p.row_stride);
    Vec16 row[V];
    for (int v = 0; v < V; ++v) row[v] = r[v];
    for (int64_t m0 = m_begin; m0 < m_end; m0 += 64) {
      for (uint64_t mask = nonzero_mask(column + m0, std::min<int64_t>(64, m_end - m0)); mask != 0;
           mask &= mask - 1) {
        Vec16* d = s + (m0 - m_begin + __builtin_ctzll(mask)) * V;
        for (int v = 0; v < V; ++v) d[v] += row[v];
      }
    }
  }
  TileRowWriter writer(p, 0, static_cast<int>(p.N), m_begin);
  for (int64_t m = m_begin; m < m_end; ++m) writer.put(m, sums + (m - m_begin) * 16 * V, m == m_end - 1);
}

SPIKEOPS_CPU_CLONES void one_tile(const Plan& p, bool column_major, int64_t m_begin, int64_t m_end, float* sums) {
  const auto run = [&](auto v) SPIKEOPS_CPU_INLINE_LAMBDA {
    constexpr int V = decltype(v)::value;
    if (column_major) {
      one_tile_columns<V>(p, m_begin, m_end, sums);
    } else {
      one_tile_rows<V>(p, m_begin, m_end);
    }
  };
  switch ((p.N + 15) / 16) {
    case 1: run(std::integral_constant<int, 1>()); break;
    case 2: run(std::integral_constant<int, 2>()); break;
    case 3: run(std::integral_constant<int, 3>()); break;
    default: run(std::integral_constant<int, 4>()); break;
  }
}
#endif

// Pass 1 for row-major spikes [M, K]: p.count, p.begin and p.idx.
// Returns the size of p.idx.
int64_t list_spikes_of_rows(Plan& p) {
  const int64_t M = p.M, K = p.K;
  const bool parallel = M * K >= kMinParallelBytes;
  p.count.resize(static_cast<size_t>(M));
  p.begin.resize(static_cast<size_t>(M));
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t m = 0; m < M; ++m) p.count[m] = count_spikes(p.spikes + m * K, K);
  int64_t total = 0;
  for (int64_t m = 0; m < M; ++m) {
    p.begin[m] = total;
    total += p.count[m];
  }
  p.idx.resize(static_cast<size_t>(total));
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t m = 0; m < M; ++m) list_spikes(p.spikes + m * K, K, p.idx.data() + p.begin[m]);
  return total;
}

// Pass 1 for column-major spikes (memory holds the [K, M] transpose, e.g. the forward's S when this product is
// S^T . dY): the spikes of each memory row k are listed (the rows m they fire in), then distributed to the
// rows m in increasing k, a counting sort over the spikes instead of a transposed copy of all M * K bytes.
int64_t list_spikes_of_columns(Plan& p) {
  const int64_t M = p.M, K = p.K;
  Plan by_k;
  by_k.spikes = p.spikes;
  by_k.M = K;
  by_k.K = M;
  list_spikes_of_rows(by_k);
  p.count.assign(static_cast<size_t>(M), 0);
  p.begin.resize(static_cast<size_t>(M));
  for (int64_t k = 0; k < K; ++k) {
    const int32_t* rows = by_k.idx.data() + by_k.begin[k];
    for (int64_t i = 0; i < by_k.count[k]; ++i) ++p.count[rows[i]];
  }
  int64_t total = 0;
  for (int64_t m = 0; m < M; ++m) {
    p.begin[m] = total;
    total += p.count[m];
  }
  p.idx.resize(static_cast<size_t>(total));
  std::vector<int64_t> next(p.begin);
  for (int64_t k = 0; k < K; ++k) {
    const int32_t* rows = by_k.idx.data() + by_k.begin[k];
    for (int64_t i = 0; i < by_k.count[k]; ++i) p.idx[next[rows[i]]++] = static_cast<int32_t>(k);
  }
  return total;
}

}  // namespace

void spike_accumulate(const SpikeAccumulateArgs& a) {
  Plan p;
  p.spikes = static_cast<const uint8_t*>(a.spikes.data);
  p.rows = static_cast<const float*>(a.rows.data);
  p.bias = a.bias.defined() ? static_cast<const float*>(a.bias.data) : nullptr;
  p.out = a.out.data;
  p.out_dtype = a.out.dtype;
  p.M = a.spikes.shape[0];
  p.K = a.spikes.shape[1];
  p.out_transposed = a.out_transposed;
  p.N = a.out.shape[a.out_transposed ? 0 : 1];
  // Above 8 MB (beyond a core's share of the caches) the transposed float32 output is streamed.
  constexpr int64_t kStreamOutBytes = int64_t(8) << 20;
  p.stream_out = a.out_transposed && a.out.dtype == DType::kFloat32 && p.M * p.N * 4 >= kStreamOutBytes;
  p.rows_transposed = a.rows_layout == RowsLayout::kTransposed;
  if (a.rows_layout == RowsLayout::kRowMajor) {
    p.tile_stride = kTileN;
    p.row_stride = p.N;
  } else {
    p.tile_stride = p.K * kTileN;
    p.row_stride = kTileN;
  }
  const int64_t M = p.M, N = p.N;
  const bool column_major = a.spikes.strides[0] == 1 && M > 1 && p.K > 1;  // validated: else row-major
  const int64_t tiles = (N + kTileN - 1) / kTileN;
  // Transposed rows whose tiles several tasks read (one tile, or fewer tiles than threads) are packed once,
  // whole: fewer than `threads` tiles, no more memory than the per-thread scratch buffers would take.
  std::vector<float> packed;
  const auto pack_whole = [&] {
    packed.resize(static_cast<size_t>(tiles * p.K * kTileN));
    for (int64_t t = 0; t < tiles; ++t) {
      pack_tile(p.rows, p.K, t * kTileN, static_cast<int>(std::min<int64_t>(kTileN, N - t * kTileN)),
                packed.data() + t * p.K * kTileN);
    }
    p.rows = packed.data();
    p.rows_transposed = false;
  };
  if (p.rows_transposed && tiles == 1) pack_whole();

#if SPIKEOPS_HAVE_VECTOR_EXT
  if (tiles == 1 && (p.row_stride == kTileN || N == kTileN)) {  // one tile, read as whole vectors
    // Parts of at most kMaxPartRows rows (a part's sums, for column-major spikes, take 128 KB at most), in
    // multiples of kFlushRows, two per thread where the rows allow.
    constexpr int64_t kMaxPartRows = 512;
    const bool parallel = M * p.K >= kMinParallelBytes;
    const int64_t rows = std::min(kMaxPartRows, part_rows(M, 2 * (parallel ? max_threads() : 1)));
    const int64_t parts = (M + rows - 1) / rows;
#pragma omp parallel if (parallel && parts > 1)
    {
      std::vector<float> sums(column_major ? static_cast<size_t>(rows * kTileN) : 0);
#pragma omp for schedule(dynamic, 1)
      for (int64_t part = 0; part < parts; ++part) {
        one_tile(p, column_major, part * rows, std::min(M, (part + 1) * rows), sums.data());
      }
    }
    return;
  }
#endif

  // Pass 1: the spiking columns of every row.
  const int64_t total = column_major ? list_spikes_of_columns(p) : list_spikes_of_rows(p);

  // Pass 2: add the selected rows, one column tile per task. With fewer tiles than threads (a narrow output)
  // the rows are split too, in multiples of kFlushRows, so that every thread has work: each part then reads
  // the tile's slice of `rows` on its own.
  const bool parallel = total * std::min<int64_t>(N, kTileN) * tiles >= kMinParallelBytes;
  const int64_t threads = parallel ? max_threads() : 1;
  const int64_t rows = tiles >= threads ? M : part_rows(M, (2 * threads + tiles - 1) / tiles);
  const int64_t row_parts = (M + rows - 1) / rows;
  if (p.rows_transposed && 2 * total < p.K) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t t = 0; t < tiles; ++t) gather_columns(p, t * kTileN, std::min(N, (t + 1) * kTileN));
    return;
  }
  if (p.rows_transposed && row_parts > 1) pack_whole();
#pragma omp parallel if (parallel && tiles * row_parts > 1)
  {
    std::vector<float> scratch(p.rows_transposed ? static_cast<size_t>(p.K * kTileN) : 0);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tiles * row_parts; ++task) {
      const int64_t n0 = task / row_parts * kTileN, m_begin = task % row_parts * rows;
      accumulate_tile(p, n0, static_cast<int>(std::min<int64_t>(kTileN, N - n0)), m_begin,
                      std::min(M, m_begin + rows), scratch.data());
    }
  }
}

}  // namespace cpu
}  // namespace spikeops
