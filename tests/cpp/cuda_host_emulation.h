// Runs the CUDA kernels of csrc/kernels on the host, compiled by g++, so a machine without a GPU
// checks what they compute (tests/cpp/*_emulation.cpp, run by tests/test_kernel_emulation.py).
//
// One CTA at a time (or one cluster of CTAs at a time, its CTAs at once), one std::thread per CUDA
// thread (made once, reused by every launch); __syncthreads is a std::barrier over a CTA's;
// __shared__ variables are static (one copy, shared by the CTA's threads) and each CTA's dynamic
// shared memory is one buffer, poisoned with NaN bytes before each CTA. Stand-ins that are
// stricter than the hardware where they can be:
//   * WMMA: every lane loads the warp's whole 16x16 tiles; lane 0 computes the product (fp32
//     products, fp32 sums in k order) and stores it, the other lanes' accumulators are NaN.
//     Pointers must be 32-byte aligned and ldm a multiple of 16 bytes, as on the GPU (a violation
//     aborts).
//   * cp.async: a copy lands only at the wait that covers it, the latest moment the hardware may
//     deliver it (a read before the wait sees stale data); 16-byte alignment is checked. With
//     XSEP_EMULATION_EAGER_COPIES=1 in the environment, it lands when issued instead, the earliest
//     moment: a copy into a buffer that is still being read (by other threads, or by a warpgroup
//     MMA in flight, which runs at its wait) overwrites what the reader sees. The tests run both.
//   * Bulk copies (cp.async.bulk) and transaction barriers (mbarrier): a copy lands when a wait
//     on its barrier finds the phase complete (all arrivals made, every announced byte copied), the
//     latest moment; with XSEP_EMULATION_EAGER_COPIES=1, when issued. Its bytes count for the
//     phase only once landed in that sense, so a wait before the copy was issued spins. What it
//     writes is the async proxy's: wgmma may read it with no fence.
//   * Dynamic shared memory starts 128 bytes past a 1024-byte boundary (all its declaration
//     promises), so the kernels must align their swizzled wgmma buffers themselves.
//   * Proxies: what a thread's landed cp.async copies and store_shared stores wrote stays unseen
//     by wgmma (the async proxy) until that thread's fence.proxy.async (fence_shared_for_wgmma); the
//     wgmma stand-in (wgmma_emulation.h) aborts on reading it earlier.
//   * Clusters: a CTA reaches another's dynamic shared memory at the same offset (mapa), arrives on
//     its barriers, and multicasts bulk copies into it; the cluster barrier is a std::barrier
//     over every thread of the cluster.
// Not modelled: warp shuffles and votes, the memory model beyond the barriers, timing. Built with
// -fsanitize=thread, a missing barrier shows up as a data race on shared memory; with
// -fsanitize=address,undefined, an access outside a tensor or an overflowing index.
#pragma once

// The CUDA headers first: they declare threadIdx / blockIdx, which are redefined below.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <barrier>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#define XSEP_HOST_EMULATION 1
#define __launch_bounds__(...)
#undef __shared__
#define __shared__ static
#define threadIdx xsep_emulated_thread_idx
#define blockIdx xsep_emulated_block_idx
#define gridDim xsep_emulated_grid_dim
#define blockDim xsep_emulated_block_dim

inline thread_local uint3 xsep_emulated_thread_idx;
inline thread_local uint3 xsep_emulated_block_idx;
inline dim3 xsep_emulated_grid_dim;
inline dim3 xsep_emulated_block_dim;

namespace xsep_emulation {

[[noreturn]] inline void die(const char* what) {
  std::fprintf(stderr, "emulation: %s\n", what);
  std::abort();
}
// What each CTA of the cluster running now has (a launch without clusters: one CTA at a time, rank
// 0): its __syncthreads barrier, its shared-memory window and dynamic shared memory, what wgmma may
// not read yet (below), its named barriers. A thread finds its CTA's by its rank in the cluster.
constexpr int kMaxCluster = 2;
struct Cta {
  std::barrier<>* barrier = nullptr;
  unsigned char* shared_window = nullptr;   // see run_grid
  unsigned char* dynamic_shared = nullptr;  // inside it
  size_t window_granules = 0;
  std::unique_ptr<std::atomic<int>[]> unpublished;
  std::mutex named_barrier_mutex;
  std::unique_ptr<std::barrier<>> named_barriers[16];
};
inline Cta ctas[kMaxCluster];
inline int cluster_size = 1;
inline std::barrier<>* cluster_barrier = nullptr;  // every thread of the cluster
inline thread_local int my_rank = 0;
inline Cta& cta() { return ctas[my_rank]; }

// One committed group of 16-byte copies of one thread.
struct Copy {
  void* dst;
  const void* src;
  bool valid;
};
inline const bool eager_copies = std::getenv("XSEP_EMULATION_EAGER_COPIES") != nullptr;

// What wgmma (the async proxy) may not read yet: per 16-byte granule of the CTA's shared window
// (Cta::unpublished), the thread (+ 1) whose generic-proxy write there (a landed cp.async copy,
// store_shared) it has not fenced since (fence.proxy.async: fence_shared_for_wgmma); 0: published.
// The wgmma stand-in refuses to read an unpublished granule, so a missing or misplaced fence shows.
// (Other plain stores are not tracked.)
inline bool track_async_proxy = false;  // set by wgmma_emulation.h: only wgmma reads through it
inline thread_local std::vector<size_t> my_unpublished;  // granules this thread wrote since its last fence

inline void generic_shared_write(const void* dst, int bytes) {
  const auto* p = static_cast<const unsigned char*>(dst);
  Cta& c = cta();
  if (!track_async_proxy || c.shared_window == nullptr || p < c.shared_window) return;  // static __shared__: untracked
  const size_t offset = static_cast<size_t>(p - c.shared_window);
  for (size_t g = offset / 16; g <= (offset + bytes - 1) / 16 && g < c.window_granules; ++g) {
    c.unpublished[g].store(static_cast<int>(xsep_emulated_thread_idx.x) + 1, std::memory_order_relaxed);
    my_unpublished.push_back(g);
  }
}

inline void fence_proxy_async() {
  const int me = static_cast<int>(xsep_emulated_thread_idx.x) + 1;
  for (size_t g : my_unpublished) {
    int expected = me;  // another thread's later write there stays unpublished
    cta().unpublished[g].compare_exchange_strong(expected, 0, std::memory_order_relaxed);
  }
  my_unpublished.clear();
}

// Dies if wgmma would read the granule at `offset` in the shared window before its writer fenced.
inline void check_published(size_t offset) {
  const Cta& c = cta();
  const int writer = offset / 16 < c.window_granules ? c.unpublished[offset / 16].load(std::memory_order_relaxed) : 0;
  if (writer != 0) {
    std::fprintf(stderr, "emulation: the async proxy (wgmma, a bulk copy) reads shared memory (offset %zu) that thread %d wrote with no fence.proxy.async since\n",
                 offset, writer - 1);
    std::abort();
  }
}

inline void land(const Copy& c) {
  if (c.valid) {
    std::memcpy(c.dst, c.src, 16);
  } else {
    std::memset(c.dst, 0, 16);
  }
  generic_shared_write(c.dst, 16);  // cp.async writes through the generic proxy
}
inline thread_local std::vector<std::vector<Copy>> committed;
inline thread_local std::vector<Copy> open_group;

// Each CTA's shared-memory window (1024-byte aligned: an offset in it has the address bits that
// wgmma's swizzles use) and its dynamic shared memory (XSEP_DYNAMIC_SHARED) inside it, 128 bytes
// past a 1024-byte boundary: on the GPU it follows the static shared memory, aligned as its
// declaration asks (128) and no more is promised, so the kernels align their swizzled buffers
// themselves.
constexpr size_t kDynamicSharedOffset = 128;

// The threads that run the CTAs' threads, made once and reused by every launch: ThreadSanitizer
// takes ~0.7 ms to make a thread, a third of an emulation's time when each launch made its own.
// run(n, body) runs body(i) for every i < n, each on its own thread, all at once, and returns once
// all have. A thread's thread_local state outlives a launch, so run_grid checks at the end of each
// CTA that nothing is left in it (end_of_cta_checks).
class Workers {
 public:
  ~Workers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      quit_ = true;
    }
    start_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  void run(int n, const std::function<void(int)>& body) {
    std::unique_lock<std::mutex> lock(mutex_);
    while (static_cast<int>(threads_.size()) < n) {
      const int index = static_cast<int>(threads_.size());
      threads_.emplace_back([this, index] { work(index); });
    }
    body_ = &body, active_ = n, running_ = n;
    ++launch_;
    start_.notify_all();
    done_.wait(lock, [&] { return running_ == 0; });
    body_ = nullptr;
  }

 private:
  void work(int index) {
    unsigned seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      start_.wait(lock, [&] { return quit_ || launch_ != seen; });
      if (quit_) return;
      seen = launch_;
      if (index >= active_) continue;  // a launch of fewer threads
      const std::function<void(int)>& body = *body_;
      lock.unlock();
      body(index);
      lock.lock();
      if (--running_ == 0) done_.notify_one();
    }
  }

  std::mutex mutex_;
  std::condition_variable start_, done_;
  std::vector<std::thread> threads_;
  const std::function<void(int)>* body_ = nullptr;
  int active_ = 0, running_ = 0;
  unsigned launch_ = 0;
  bool quit_ = false;
};
inline Workers workers;

// What a thread must have left nothing in at the end of a CTA, besides cp.async's groups (a stand-in
// header adds its own: wgmma_emulation.h, the warpgroup MMAs).
inline std::vector<void (*)()> end_of_cta_checks;

// kernel() once per CTA of `grid`, with `threads` threads each and `shared_bytes` of dynamic
// shared memory, filled with 0xff bytes (NaN in every float type) before each CTA, so a value
// read before it is written shows. `cluster` > 1: the CTAs run in clusters of that many
// consecutive CTAs along x (grid.x a multiple of it), a cluster's CTAs at once, each with its own
// shared memory; one cluster after another. Static __shared__ variables are one copy for the
// whole program, so a kernel launched in clusters keeps all its shared state in dynamic shared
// memory.
template <class Kernel>
void run_grid(dim3 grid, int threads, Kernel kernel, size_t shared_bytes = 0, int cluster = 1) {
  if (cluster < 1 || cluster > kMaxCluster || grid.x % cluster != 0) die("run_grid: a cluster size the grid cannot take");
  std::vector<std::unique_ptr<std::barrier<>>> barriers;
  std::vector<std::vector<unsigned char>> storage(cluster);
  for (int r = 0; r < cluster; ++r) {
    Cta& c = ctas[r];
    barriers.push_back(std::make_unique<std::barrier<>>(threads));
    c.barrier = barriers.back().get();
    storage[r].resize(shared_bytes + 2048);
    unsigned char* base = storage[r].data();
    c.shared_window = base + (1024 - reinterpret_cast<uintptr_t>(base) % 1024);
    c.dynamic_shared = c.shared_window + kDynamicSharedOffset;
    c.window_granules = (kDynamicSharedOffset + shared_bytes + 15) / 16;
    c.unpublished.reset(new std::atomic<int>[c.window_granules]());
    for (auto& named : c.named_barriers) named.reset();
  }
  std::barrier<> whole_cluster(threads * cluster);
  cluster_barrier = &whole_cluster;
  cluster_size = cluster;
  gridDim = grid;
  blockDim = dim3(threads);
  workers.run(threads * cluster, [&](int i) {
    const int t = i % threads, rank = i / threads;
    my_rank = rank;
    threadIdx = make_uint3(t, 0, 0);
    Cta& c = ctas[rank];
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = rank; x < grid.x; x += cluster) {
          blockIdx = make_uint3(x, y, z);
          if (t == 0) {
            std::memset(c.dynamic_shared, 0xff, shared_bytes);
            for (size_t g = 0; g < c.window_granules; ++g) c.unpublished[g].store(0, std::memory_order_relaxed);
          }
          my_unpublished.clear();
          whole_cluster.arrive_and_wait();
          kernel();
          for (const auto& group : committed)
            if (!group.empty()) die("a CTA ended with cp.async copies not waited for");
          if (!open_group.empty()) die("a CTA ended with cp.async copies not committed");
          committed.clear();  // empty groups (the pipelines' tail) are nothing
          for (auto check : end_of_cta_checks) check();
          whole_cluster.arrive_and_wait();  // the next cluster reuses the shared memory
        }
  });
  for (int r = 0; r < cluster; ++r) ctas[r].barrier = nullptr, ctas[r].shared_window = ctas[r].dynamic_shared = nullptr;
  cluster_barrier = nullptr;
  cluster_size = 1;
}

// The address in CTA `rank` of the cluster that `p` (in this CTA's shared-memory window) has in
// this one: mapa.
inline void* peer_shared(const void* p, int rank) {
  const Cta& me = cta();
  const auto* q = static_cast<const unsigned char*>(p);
  if (rank < 0 || rank >= cluster_size) die("a cluster rank outside the cluster");
  if (q < me.shared_window || q >= me.dynamic_shared + (me.window_granules * 16 - kDynamicSharedOffset))
    die("mapa of an address outside the CTA's dynamic shared memory");
  return ctas[rank].shared_window + (q - me.shared_window);
}

}  // namespace xsep_emulation

inline void __syncthreads() { xsep_emulation::cta().barrier->arrive_and_wait(); }

template <typename T>
inline T __ldg(const T* p) {
  return *p;
}

namespace xsep {

inline unsigned char* emulated_dynamic_shared() { return xsep_emulation::cta().dynamic_shared; }
inline void emulated_generic_shared_write(const void* dst, int bytes) { xsep_emulation::generic_shared_write(dst, bytes); }
inline void emulated_fence_proxy_async() { xsep_emulation::fence_proxy_async(); }

inline void emulated_cp_async_16(void* dst, const void* src, bool valid) {
  if (reinterpret_cast<uintptr_t>(dst) % 16 != 0 || (valid && reinterpret_cast<uintptr_t>(src) % 16 != 0))
    xsep_emulation::die("cp.async with an address not 16-byte aligned");
  if (xsep_emulation::eager_copies) {
    xsep_emulation::land({dst, src, valid});
    xsep_emulation::open_group.push_back({nullptr, nullptr, false});  // counted in its group, landed
  } else {
    xsep_emulation::open_group.push_back({dst, src, valid});
  }
}
inline void emulated_cp_async_commit() {
  xsep_emulation::committed.push_back(xsep_emulation::open_group);
  xsep_emulation::open_group.clear();
}
inline void emulated_cp_async_wait(int pending) {
  auto& groups = xsep_emulation::committed;
  while (static_cast<int>(groups.size()) > pending) {
    for (const auto& c : groups.front())
      if (c.dst != nullptr) xsep_emulation::land(c);
    groups.erase(groups.begin());
  }
}

// ---- transaction barriers and bulk copies -------------------------------------------------------
// A barrier's state lives beside the kernel's 8-byte __shared__ word, which holds its index here.
struct EmulatedMbarrier {
  int arrivals_needed = 0, arrivals = 0;
  int64_t bytes_announced = 0;
  unsigned phase = 0;  // completed phases; the current one has parity phase % 2
  std::vector<xsep_emulation::Copy> pending;  // dst, src of each bulk copy (16-byte pieces)
};
inline std::mutex mbarrier_mutex;
// Signalled on every change a waiter could be waiting for (an arrival, a copy issued, a phase
// completed): a waiting thread sleeps instead of spinning on the mutex, so the threads with work
// have the cores (the same wall time here, ~10% less CPU time under ThreadSanitizer).
inline std::condition_variable mbarrier_changed;
inline std::vector<std::unique_ptr<EmulatedMbarrier>> mbarriers;

inline EmulatedMbarrier& emulated_mbarrier(uint64_t* bar) {
  if (*bar == 0 || *bar > mbarriers.size()) xsep_emulation::die("mbarrier used before mbarrier.init");
  return *mbarriers[*bar - 1];
}

inline void emulated_mbarrier_init(uint64_t* bar, int arrivals) {
  std::lock_guard<std::mutex> lock(mbarrier_mutex);
  mbarriers.push_back(std::make_unique<EmulatedMbarrier>());
  mbarriers.back()->arrivals_needed = arrivals;
  *bar = mbarriers.size();
}

inline void emulated_mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  std::lock_guard<std::mutex> lock(mbarrier_mutex);
  EmulatedMbarrier& b = emulated_mbarrier(bar);
  if (b.arrivals == b.arrivals_needed) xsep_emulation::die("mbarrier: more arrivals than the phase expects");
  ++b.arrivals;
  b.bytes_announced += bytes;
  mbarrier_changed.notify_all();
}

inline void emulated_mbarrier_arrive(uint64_t* bar) { emulated_mbarrier_arrive_expect_tx(bar, 0); }

// bar.sync id, threads: one std::barrier per id and CTA, made by its first user (each id always
// with the same thread count, as on the GPU).
inline void emulated_named_barrier_sync(int id, int threads) {
  if (id < 1 || id > 15) xsep_emulation::die("named barrier id outside 1..15");
  xsep_emulation::Cta& c = xsep_emulation::cta();
  std::barrier<>* bar;
  {
    std::lock_guard<std::mutex> lock(c.named_barrier_mutex);
    if (!c.named_barriers[id]) c.named_barriers[id] = std::make_unique<std::barrier<>>(threads);
    bar = c.named_barriers[id].get();
  }
  bar->arrive_and_wait();
}

inline void emulated_bulk_copy_to_shared(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  if (reinterpret_cast<uintptr_t>(dst) % 16 != 0 || reinterpret_cast<uintptr_t>(src) % 16 != 0 || bytes % 16 != 0)
    xsep_emulation::die("cp.async.bulk with an address or size not a multiple of 16 bytes");
  std::lock_guard<std::mutex> lock(mbarrier_mutex);
  EmulatedMbarrier& b = emulated_mbarrier(bar);
  for (uint32_t i = 0; i < bytes; i += 16) {
    void* d = static_cast<unsigned char*>(dst) + i;
    const void* s = static_cast<const unsigned char*>(src) + i;
    if (xsep_emulation::eager_copies) {
      std::memcpy(d, s, 16);  // the async proxy's write: nothing to publish
      b.pending.push_back({nullptr, nullptr, false});
    } else {
      b.pending.push_back({d, s, true});
    }
  }
  mbarrier_changed.notify_all();
}

// Whether the phase of parity `parity` has completed (completing it, and landing its copies, where
// it is complete but no one has asked yet); never waits.
inline bool mbarrier_test_parity_locked(uint64_t* bar, uint32_t parity) {
  EmulatedMbarrier& b = emulated_mbarrier(bar);
  if (b.phase % 2 != parity % 2) return true;  // the phase of that parity has completed
  const int64_t copied = static_cast<int64_t>(b.pending.size()) * 16;
  if (b.arrivals == b.arrivals_needed && copied == b.bytes_announced) {
    for (const auto& c : b.pending)
      if (c.dst != nullptr) std::memcpy(c.dst, c.src, 16);
    b.pending.clear();
    b.arrivals = 0, b.bytes_announced = 0;
    ++b.phase;
    mbarrier_changed.notify_all();  // others waiting on this phase
    return true;
  }
  // (Before the last arrival, a peer's multicast may have landed bytes the local arrival has yet to
  // announce: the transaction count runs below zero for a while, as on the GPU.)
  if (b.arrivals == b.arrivals_needed && copied > b.bytes_announced)
    xsep_emulation::die("mbarrier: more bytes copied than announced");
  return false;
}

inline bool emulated_mbarrier_test_parity(uint64_t* bar, uint32_t parity) {
  std::lock_guard<std::mutex> lock(mbarrier_mutex);
  return mbarrier_test_parity_locked(bar, parity);
}

inline void emulated_mbarrier_wait_parity(uint64_t* bar, uint32_t parity) {
  std::unique_lock<std::mutex> lock(mbarrier_mutex);
  mbarrier_changed.wait(lock, [&] { return mbarrier_test_parity_locked(bar, parity); });
}

// ---- clusters -----------------------------------------------------------------------------------
inline int emulated_cluster_rank() { return xsep_emulation::my_rank; }
inline void emulated_cluster_sync() { xsep_emulation::cluster_barrier->arrive_and_wait(); }

// An arrival on the barrier at `bar`'s place in CTA `rank`'s shared memory.
inline void emulated_mbarrier_arrive_remote(uint64_t* bar, int rank) {
  emulated_mbarrier_arrive(static_cast<uint64_t*>(xsep_emulation::peer_shared(bar, rank)));
}

// The bulk copy of this CTA's shared memory at `at` into the same place in CTA `rank`, counted
// against the barrier at `bar`'s place there. It reads through the async proxy, so what it reads
// must have been fenced by its writers (checked when issued, the earliest the copy may read).
inline void emulated_bulk_copy_to_peer(const void* at, uint32_t bytes, uint64_t* bar, int rank) {
  const auto* p = static_cast<const unsigned char*>(at);
  const xsep_emulation::Cta& me = xsep_emulation::cta();
  for (uint32_t i = 0; i < bytes; i += 16) xsep_emulation::check_published(static_cast<size_t>(p + i - me.shared_window));
  emulated_bulk_copy_to_shared(xsep_emulation::peer_shared(at, rank), at, bytes,
                               static_cast<uint64_t*>(xsep_emulation::peer_shared(bar, rank)));
}

// The bulk copy into `dst`'s place in every CTA of `mask` (bit r: rank r), each counted against the
// barrier at `bar`'s place in that CTA.
inline void emulated_bulk_copy_multicast(void* dst, const void* src, uint32_t bytes, uint64_t* bar, uint16_t mask) {
  if (mask == 0 || mask >> xsep_emulation::cluster_size != 0) xsep_emulation::die("a multicast mask outside the cluster");
  for (int r = 0; r < xsep_emulation::cluster_size; ++r)
    if ((mask >> r) & 1u)
      emulated_bulk_copy_to_shared(xsep_emulation::peer_shared(dst, r), src, bytes,
                                   static_cast<uint64_t*>(xsep_emulation::peer_shared(bar, r)));
}

}  // namespace xsep

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
  static constexpr int num_elements = rows * cols;
  float x[rows * cols];  // the whole tile, [row][col], in every lane
};

inline float __float_to_tf32(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  bits &= ~uint32_t{0x1fff};  // 10 mantissa bits kept (truncation: the tests only need the shape)
  std::memcpy(&v, &bits, 4);
  return v;
}

template <class P>
inline void check_operand(const P* p, unsigned ldm) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0) xsep_emulation::die("WMMA pointer not 32-byte aligned");
  if ((ldm * sizeof(P)) % 16 != 0) xsep_emulation::die("WMMA ldm not a multiple of 16 bytes");
}

template <class Use, int M, int N, int K, class T, class Layout, class P>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const P* p, unsigned ldm) {
  check_operand(p, ldm);
  using F = fragment<Use, M, N, K, T, Layout>;
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c) {
      const P v = std::is_same_v<Layout, row_major> ? p[r * ldm + c] : p[c * ldm + r];
      f.x[r * F::cols + c] = static_cast<float>(v);
    }
}

template <class Use, int M, int N, int K, class T, class Layout>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, float v) {
  for (float& e : f.x) e = v;
}

template <int M, int N, int K, class TA, class LA, class TB, class LB>
inline void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
                     const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
  // Only lane 0's accumulator is ever stored (store_matrix_sync), and the kernels use accumulators
  // for nothing else; the other lanes' products would be the same ones 31 times over (most of an
  // emulation's time), so those lanes hold NaN instead: a kernel that read an accumulator element
  // in another lane would show it in its output.
  if (threadIdx.x % 32 != 0) {
    for (float& e : d.x) e = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  float out[M * N];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float acc = c.x[i * N + j];
      for (int k = 0; k < K; ++k) acc += a.x[i * K + k] * b.x[k * N + j];
      out[i * N + j] = acc;
    }
  std::memcpy(d.x, out, sizeof(out));
}

template <int M, int N, int K>
inline void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t layout) {
  check_operand(p, ldm);
  if (threadIdx.x % 32 != 0) return;  // one lane writes the warp's tile
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) p[layout == mem_row_major ? i * ldm + j : j * ldm + i] = f.x[i * N + j];
}

}  // namespace nvcuda::wmma
