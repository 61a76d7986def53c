// The block-level GEMM step every kernel shares: C[BM x BN] += A[BM x BK] . B[BK x BN], both
// operands in shared memory, A stored row-major [m][k] and B stored as [n][k] (so both are read
// along k; TensorCoreMma's kAColMajor / kBRowMajor take A as [k][m] / B as [k][n] instead, for
// operands copied as they lie in global memory or written with 16-byte stores), accumulators in
// registers, staged to shared memory at the end as fp32 [m][n].
//
// TensorCoreMma: WMMA fragments (fp16 / bf16 m16n16k16, TF32 m16n16k8) with fp32 accumulation,
//                each warp owning a WM x WN block.
// FfmaMma:       exact float32, each thread owning a 4 x 8 block, FFMA.
#pragma once

#include <mma.h>

#include <type_traits>

#include "element_types.cuh"

namespace xsep {

// Sizes of one block GEMM tile and of its shared-memory operands.
template <typename T, int BM_, int BN_, int BK_, int kWarpsM_, int kWarpsN_>
struct GemmTile {
  static constexpr int BM = BM_, BN = BN_, BK = BK_;
  static constexpr int kWarpsM = kWarpsM_, kWarpsN = kWarpsN_;
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  static constexpr int WM = BM / kWarpsM;
  static constexpr int WN = BN / kWarpsN;
  // MMA operands in shared memory: the 16-bit type itself, or fp32 (rounded to TF32 in registers).
  using Operand = T;
  static constexpr int kMmaK = std::is_same_v<T, float> ? 8 : 16;  // WMMA k: tf32 m16n16k8, else m16n16k16
  // Row pads of 16 bytes keep WMMA's 32-byte alignment and break shared-memory bank conflicts.
  static constexpr int kPad = 16 / sizeof(Operand);
  static constexpr int kLdAB = BK + kPad;
  static constexpr int kLdC = BN + 4;
  static_assert(BK % kMmaK == 0 && WM % 16 == 0 && WN % 16 == 0, "tile must be whole WMMA fragments");
};

template <class Tile, bool kAColMajor = false, bool kBRowMajor = false>
struct TensorCoreMma {
  using Operand = typename Tile::Operand;
  using ARow = Operand[Tile::kLdAB];
  using CRow = float[Tile::kLdC];
  static constexpr int kFm = Tile::WM / 16, kFn = Tile::WN / 16, kK = Tile::kMmaK;
  using InT = std::conditional_t<std::is_same_v<Operand, float>, nvcuda::wmma::precision::tf32, Operand>;
  using ALayout = std::conditional_t<kAColMajor, nvcuda::wmma::col_major, nvcuda::wmma::row_major>;
  using FragA = nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, kK, InT, ALayout>;
  using BLayout = std::conditional_t<kBRowMajor, nvcuda::wmma::row_major, nvcuda::wmma::col_major>;
  using FragB = nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, kK, InT, BLayout>;
  using FragC = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, kK, float>;
  FragC acc[kFm][kFn];
  int warp_m, warp_n;

  __device__ __forceinline__ TensorCoreMma() {
    const int warp = threadIdx.x / 32;
    warp_m = warp / Tile::kWarpsN;
    warp_n = warp % Tile::kWarpsN;
    zero();
  }

  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int i = 0; i < kFm; ++i)
#pragma unroll
      for (int j = 0; j < kFn; ++j) nvcuda::wmma::fill_fragment(acc[i][j], 0.f);
  }

  template <typename Frag>
  __device__ __forceinline__ static void round_to_tf32(Frag& f) {
    if constexpr (std::is_same_v<Operand, float>) {
#pragma unroll
      for (int t = 0; t < f.num_elements; ++t) f.x[t] = nvcuda::wmma::__float_to_tf32(f.x[t]);
    }
  }

  __device__ __forceinline__ void step(const ARow* a, const ARow* b) { step(&a[0][0], Tile::kLdAB, &b[0][0], Tile::kLdAB); }

  // The same with explicit leading dimensions (elements; multiples of 16 bytes, rows of 16 x 32-byte
  // aligned as WMMA needs), for an A that is a column slice of a wider array.
  __device__ __forceinline__ void step(const Operand* a, int lda, const Operand* b, int ldb) {
#pragma unroll
    for (int kk = 0; kk < Tile::BK; kk += kK) {
      FragA fa[kFm];
      FragB fb[kFn];
#pragma unroll
      for (int i = 0; i < kFm; ++i) {
        const int m = warp_m * Tile::WM + i * 16;
        nvcuda::wmma::load_matrix_sync(fa[i], kAColMajor ? a + kk * lda + m : a + m * lda + kk, lda);
        round_to_tf32(fa[i]);
      }
#pragma unroll
      for (int j = 0; j < kFn; ++j) {
        // B stored [n][k] is the K x N operand column-major with leading dimension ldb; [k][n] is
        // it row-major.
        const int n = warp_n * Tile::WN + j * 16;
        nvcuda::wmma::load_matrix_sync(fb[j], kBRowMajor ? b + kk * ldb + n : b + n * ldb + kk, ldb);
        round_to_tf32(fb[j]);
      }
#pragma unroll
      for (int i = 0; i < kFm; ++i)
#pragma unroll
        for (int j = 0; j < kFn; ++j) nvcuda::wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
  }

  __device__ __forceinline__ void stage(CRow* c) {
#pragma unroll
    for (int i = 0; i < kFm; ++i)
#pragma unroll
      for (int j = 0; j < kFn; ++j)
        nvcuda::wmma::store_matrix_sync(&c[warp_m * Tile::WM + i * 16][warp_n * Tile::WN + j * 16], acc[i][j],
                                        Tile::kLdC, nvcuda::wmma::mem_row_major);
  }
};

template <class Tile>
struct FfmaMma {
  using ARow = typename Tile::Operand[Tile::kLdAB];
  using CRow = float[Tile::kLdC];
  static constexpr int kTm = 4, kTn = 8;
  static constexpr int kThreadsN = Tile::BN / kTn;
  static_assert(Tile::BM / kTm * kThreadsN == Tile::kThreads, "one 4x8 block per thread");
  float acc[kTm][kTn];
  int m0, n0;

  __device__ __forceinline__ FfmaMma() {
    m0 = (threadIdx.x / kThreadsN) * kTm;
    n0 = (threadIdx.x % kThreadsN) * kTn;
    zero();
  }

  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int i = 0; i < kTm; ++i)
#pragma unroll
      for (int j = 0; j < kTn; ++j) acc[i][j] = 0.f;
  }

  __device__ __forceinline__ void step(const ARow* a, const ARow* b) { step(&a[0][0], Tile::kLdAB, &b[0][0], Tile::kLdAB); }

  __device__ __forceinline__ void step(const float* a, int lda, const float* b, int ldb) {
#pragma unroll 2
    for (int k = 0; k < Tile::BK; ++k) {
      float fa[kTm], fb[kTn];
#pragma unroll
      for (int i = 0; i < kTm; ++i) fa[i] = a[(m0 + i) * lda + k];
#pragma unroll
      for (int j = 0; j < kTn; ++j) fb[j] = b[(n0 + j) * ldb + k];
#pragma unroll
      for (int i = 0; i < kTm; ++i)
#pragma unroll
        for (int j = 0; j < kTn; ++j) acc[i][j] = fmaf(fa[i], fb[j], acc[i][j]);
    }
  }

  __device__ __forceinline__ void stage(CRow* c) {
#pragma unroll
    for (int i = 0; i < kTm; ++i)
#pragma unroll
      for (int j = 0; j < kTn; ++j) c[m0 + i][n0 + j] = acc[i][j];
  }
};

template <class Tile, Math kMath>
using BlockMma = std::conditional_t<kMath == Math::kTensorCore, TensorCoreMma<Tile>, FfmaMma<Tile>>;

}  // namespace xsep
