// The staged pw-gradient kernel (sepconv_bwd_pw_staged_kernel.cuh) with its GEMM on Hopper's
// warpgroup MMA, EXPERIMENTAL (XSEP_BWD_KERNEL=wgmma; written without a GPU): the same grid, split-K
// plan and results; only StagedPwGemm changes. grad_pw[64 channels x 128 outputs] += Z^T . dY per
// 32-pixel chunk: two warpgroups of 64 x 64 x 16 wgmma side by side along the outputs, both
// operands MN-major (Z stored [pixel][channel] by the kernel's 16-byte stores, dY copied as it lies
// in channels_last memory) in 64-byte-swizzled 4-slot rings, each step's batch retired within the step. Built only for
// sm_90a with CuTe; elsewhere its methods trap, and the launcher never starts it (it checks for the
// marker in static shared memory that only the sm_90a code declares).
#pragma once

#include <cstdint>

#include "sepconv_bwd_pw_staged_kernel.cuh"
#include "wgmma_common.cuh"

#if defined(XSEP_WITH_CUTE)

namespace xsep {

template <typename T>
struct StagedPwGemm<StagedPwTraits<T, true>> {
  using Traits = StagedPwTraits<T, true>;
  using Tile = typename Traits::Tile;
  using Element = CuteElement<T>;
  static_assert(sizeof(T) == 2, "wgmma pw-gradient: fp16 / bf16");
  static constexpr int BM = Tile::BM, BN = Tile::BN, BK = Tile::BK;
  static_assert(BM == 64 && BN == 128 && BK == 32 && Tile::kThreads == 256, "two warpgroups of 64 x 64");
  // Z and dY slots are refilled kStages and kStages - 1 steps after their chunk: with one wgmma
  // batch in flight, 3 would do; 4 keeps a margin.
  static constexpr int kStages = 4;
  static constexpr int kAlign = 1024;  // align_for_wgmma's slack
  static constexpr int kZBytes = BM * BK * 2, kDyBytes = BN * BK * 2;
  struct Storage {
    unsigned char bytes[kAlign + kStages * (kZBytes + kDyBytes)];
  };
  using ZRing = decltype(cute::tile_to_shape(cute::GMMA::Layout_MN_SW64_Atom<Element>{},
                                             cute::Shape<cute::Int<BM>, cute::Int<BK>, cute::Int<kStages>>{}));
  using DyRing = decltype(cute::tile_to_shape(cute::GMMA::Layout_MN_SW64_Atom<Element>{},
                                              cute::Shape<cute::Int<BN>, cute::Int<BK>, cute::Int<kStages>>{}));
  using Atom = typename WgmmaAtom<T, BN / 2, cute::GMMA::Major::MN, cute::GMMA::Major::MN>::type;  // per warpgroup
  using TiledMma = decltype(cute::make_tiled_mma(Atom{}, cute::Layout<cute::Shape<cute::_1, cute::_2, cute::_1>>{}));
  using Acc = decltype(cute::partition_fragment_C(TiledMma{}, cute::Shape<cute::Int<BM>, cute::Int<BN>>{}));

  unsigned char* base;
  Acc acc;

  __device__ __forceinline__ explicit StagedPwGemm(Storage& st) : base(align_for_wgmma(st.bytes)) {
#if defined(XSEP_WGMMA_DEVICE_CODE)
    mark_wgmma_code();
    cute::clear(acc);
#else
    __trap();  // no wgmma in this build: the launcher never starts this kernel
#endif
  }

  __device__ __forceinline__ auto z_ring() const {
    return cute::make_tensor(cute::make_smem_ptr(reinterpret_cast<Element*>(base)), ZRing{});  // (BM, BK, kStages)
  }
  __device__ __forceinline__ auto dy_ring() const {
    return cute::make_tensor(cute::make_smem_ptr(reinterpret_cast<Element*>(base + kStages * kZBytes)), DyRing{});
  }
  // 16 bytes from (pixel k, channel cm) and (pixel k, output co): contiguous along cm / co.
  __device__ __forceinline__ T* z_at(int slot, int k, int cm) { return reinterpret_cast<T*>(&z_ring()(cm, k, slot)); }
  __device__ __forceinline__ T* dy_at(int slot, int k, int co) { return reinterpret_cast<T*>(&dy_ring()(co, k, slot)); }
  __device__ __forceinline__ T dy(int slot, int k, int co) const {
    const Element v = dy_ring()(co, k, slot);
    return *reinterpret_cast<const T*>(&v);
  }
  __device__ __forceinline__ static void fence() { fence_shared_for_wgmma(); }

  __device__ __forceinline__ void step(int slot) {
#if defined(XSEP_WGMMA_DEVICE_CODE)
    using namespace cute;
    TiledMma mma;
    ThrMMA thr_mma = mma.get_slice(threadIdx.x);
    Tensor a_frag = thr_mma.make_fragment_A(thr_mma.partition_A(z_ring()));  // (MMA, MMA_M, MMA_K, kStages)
    Tensor b_frag = thr_mma.make_fragment_B(thr_mma.partition_B(dy_ring()));
    warpgroup_fence_operand(acc);
    wgmma_arrive();
    gemm(mma, a_frag(_, _, _, slot), b_frag(_, _, _, slot), acc);
    wgmma_commit();
    // Retired within the step: the kernel issues it under `if (want_pw)`, and ptxas waits for
    // every wgmma at the loop's back edge anyway when one path has none in flight (C7517).
    wgmma_wait<0>();
    warpgroup_fence_operand(acc);
#endif
  }
  __device__ __forceinline__ void finish() {
    wgmma_wait<0>();
    cute::warpgroup_fence_operand(acc);
  }
  __device__ __forceinline__ void stage(float (*c)[Tile::kLdC]) {
    using namespace cute;
    TiledMma mma;
    Tensor coords = mma.get_slice(threadIdx.x).partition_C(make_identity_tensor(Shape<Int<BM>, Int<BN>>{}));
#pragma unroll
    for (int i = 0; i < size(acc); ++i) c[get<0>(coords(i))][get<1>(coords(i))] = acc(i);
  }
};

}  // namespace xsep

#endif  // XSEP_WITH_CUTE
