// A host stand-in for Hopper's warpgroup MMA (wgmma.mma_async, fp16 / bf16 inputs, fp32
// accumulators, both operands K-major in shared memory), for the emulation of the wgmma forward
// (tests/cpp/wgmma_fwd_emulation.cpp). Include after cuda_host_emulation.h, before CuTe.
//
// It follows the PTX ISA, not CuTe: the kernel's operands are described by the shared-memory
// descriptors CuTe builds, and this stand-in decodes them as the hardware does (start address;
// K-major: 8-row groups SBO apart, rows one swizzle width apart; MN-major: swizzle-wide blocks of
// the M/N dimension LBO apart, 8-row groups of K SBO apart; the 64- or 128-byte swizzle applied to
// the shared-memory address), and gives each thread the accumulator elements the PTX fragment
// layout assigns it. N = 64, 128 and 192; fp16, bf16 and TF32 (fp32 bits, the low 13 mantissa bits
// ignored, as the hardware does).
// A disagreement between CuTe's layouts as the kernel uses them and the hardware's reading of
// them shows as a wrong result.
//
// Asynchrony: an MMA reads shared memory only when a wgmma_wait retires its batch, the latest
// moment the hardware may read it, so a buffer refilled before the wait that covers its reader
// gives a wrong result (or a ThreadSanitizer race).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cuda_host_emulation.h"

// CuTe asks for a shared-memory address through this intrinsic: the offset in the CTA's shared
// window (1024-byte aligned, so swizzle bits agree between the two addresses).
#define CUTE_CVTA_GENERIC_TO_SHARED_ACTIVATED 1
inline size_t __cvta_generic_to_shared(const void* p) {
  const auto* q = static_cast<const unsigned char*>(p);
  if (q < xsep::emulated_dynamic_shared() || q - xsep_emulation::cta().shared_window >= (1 << 18))
    xsep_emulation::die("wgmma operand outside dynamic shared memory");
  return static_cast<size_t>(q - xsep_emulation::cta().shared_window);
}

#include <cute/arch/mma_sm90_desc.hpp>
#include <cute/atom/mma_traits_sm90_gmma.hpp>

namespace xsep_emulation {

// This program has a warpgroup MMA: track what it may read (cuda_host_emulation.h, "Proxies").
inline const bool async_proxy_tracked = (track_async_proxy = true);

// One issued MMA of one thread: 64 x N x 16, this thread's accumulators.
struct Gmma {
  uint64_t desc_a, desc_b;
  int n;           // N of the instruction
  int elem;        // element type of A and B: 0 fp16, 1 bf16, 2 tf32 (fp32 bits)
  bool a_mn_major; // A stored with M contiguous (else K)
  bool b_mn_major; // B stored with N contiguous (else K)
  bool zero_d;     // scale-d 0: D = A.B instead of D += A.B
  float* d[128];   // this thread's N / 2 accumulators, in fragment order
};
inline thread_local std::vector<Gmma> open_batch;
inline thread_local std::vector<std::vector<Gmma>> committed_batches;

// A CTA ends with every MMA it issued retired (the worker thread runs the next CTA's).
inline void check_no_mma_in_flight() {
  if (!open_batch.empty()) die("a CTA ended with warpgroup MMAs not committed");
  for (const auto& batch : committed_batches)
    if (!batch.empty()) die("a CTA ended with warpgroup MMAs not waited for");
  committed_batches.clear();
}
inline const bool mma_checked_at_cta_end = (end_of_cta_checks.push_back(&check_no_mma_in_flight), true);

// Byte address in the emulated shared memory of element (row, k) of a 16-bit operand (row: its M or
// N index) whose descriptor is `desc` (k < 16: one instruction's K).
inline const unsigned char* operand_address(uint64_t desc, bool mn_major, int elem_bytes, int row, int k) {
  cute::GmmaDescriptor d(desc);
  const uint32_t start = static_cast<uint32_t>(d.bitfield.start_address_) << 4;
  const uint32_t lbo = static_cast<uint32_t>(d.bitfield.leading_byte_offset_) << 4;
  const uint32_t sbo = static_cast<uint32_t>(d.bitfield.stride_byte_offset_) << 4;
  const int layout = d.bitfield.layout_type_;  // 1: 128-byte swizzle, 2: 64-byte, 3: 32-byte
  if (layout != 1 && layout != 2) die("wgmma stand-in: only the 64- and 128-byte swizzled K-major layouts");
  if (d.bitfield.base_offset_ != 0) die("wgmma stand-in: base offset not modelled");
  const uint32_t row_bytes = layout == 1 ? 128 : 64;  // the swizzle width
  // Base offset 0 says the operand's buffer starts on its swizzle pattern (1024 bytes for the
  // 128-byte swizzle, 512 for the 64-byte one); an instruction's start may then be a whole K step
  // (32 bytes) into a K-major row. Elsewhere the hardware's reading and CuTe's writing of the
  // pattern may differ, which this stand-in's XOR of absolute address bits would not show.
  const uint32_t into_pattern = start % (row_bytes * 8);
  if (mn_major ? into_pattern != 0 : (into_pattern % 32 != 0 || into_pattern >= row_bytes))
    die("wgmma operand not aligned to its swizzle pattern (base offset 0)");
  uint32_t addr;
  if (!mn_major) {
    // A row of the operand along K within a swizzle row; rows in groups of 8, group g at g * SBO.
    addr = start + static_cast<uint32_t>(row / 8) * sbo + static_cast<uint32_t>(row % 8) * row_bytes +
           static_cast<uint32_t>(k * elem_bytes);
  } else {
    // Swizzle rows along M/N, one per k; k in groups of 8 at SBO; the next swizzle-wide block of
    // M/N at LBO.
    const uint32_t per_row = row_bytes / elem_bytes;
    addr = start + static_cast<uint32_t>(row) / per_row * lbo + static_cast<uint32_t>(k / 8) * sbo +
           static_cast<uint32_t>(k % 8) * row_bytes + static_cast<uint32_t>(row) % per_row * elem_bytes;
  }
  // The swizzle permutes the 16-byte pieces within a row by the row's index within the pattern:
  // address bits [4, 4 + b) ^= bits [7, 7 + b), b = 3 (128-byte) or 2 (64-byte).
  const uint32_t mask = layout == 1 ? 0x7 : 0x3;
  addr ^= ((addr >> 7) & mask) << 4;
  return xsep_emulation::cta().shared_window + addr;
}

inline float load_operand(const unsigned char* p, int elem) {
  if (elem == 2) {  // TF32: the low 13 mantissa bits of the fp32 value are ignored
    uint32_t f;
    std::memcpy(&f, p, 4);
    f &= ~0x1fffu;
    float v;
    std::memcpy(&v, &f, 4);
    return v;
  }
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  if (elem == 1) {
    uint32_t f = static_cast<uint32_t>(bits) << 16;
    float v;
    std::memcpy(&v, &f, 4);
    return v;
  }
  __half_raw raw;
  raw.x = bits;
  return __half2float(__half(raw));
}

// D[64 x N] (+)= A[64 x K] . B[N x K]^T (K = 16, 8 for TF32) for this thread's elements: thread t of the warpgroup
// (warp w = t / 32, lane l = t % 32) holds d[i] at row 16 w + l / 4 + 8 ((i / 2) % 2), column
// 8 (i / 4) + 2 (l % 4) + i % 2 (the PTX ISA's wgmma D fragment for fp32 accumulators).
inline void execute(const Gmma& g) {
  const int t = static_cast<int>(threadIdx.x % 128), warp = t / 32, lane = t % 32;
  const int elem_bytes = g.elem == 2 ? 4 : 2, kk = g.elem == 2 ? 8 : 16;
  size_t checked_a = SIZE_MAX, checked_b = SIZE_MAX;  // the granule last found published, per operand
  auto read = [&](const unsigned char* p, size_t& checked) {
    const size_t offset = static_cast<size_t>(p - xsep_emulation::cta().shared_window);
    if (offset / 16 != checked) check_published(offset), checked = offset / 16;
    return load_operand(p, g.elem);
  };
  // The thread's elements lie on two rows of A and N / 4 columns of B (each column feeds both
  // rows): each operand element is read once, not once per accumulator that uses it.
  float a[2][16], b[64][16];
  if (g.n > 256) die("wgmma stand-in: N above 256");
  for (int r = 0; r < 2; ++r)
    for (int k = 0; k < kk; ++k)
      a[r][k] = read(operand_address(g.desc_a, g.a_mn_major, elem_bytes, 16 * warp + lane / 4 + 8 * r, k), checked_a);
  for (int c = 0; c < g.n / 4; ++c)
    for (int k = 0; k < kk; ++k)
      b[c][k] =
          read(operand_address(g.desc_b, g.b_mn_major, elem_bytes, 8 * (c / 2) + 2 * (lane % 4) + c % 2, k), checked_b);
  for (int i = 0; i < g.n / 2; ++i) {
    const float* row = a[(i / 2) % 2];          // row 16 w + l / 4 + 8 ((i / 2) % 2)
    const float* col = b[2 * (i / 4) + i % 2];  // column 8 (i / 4) + 2 (l % 4) + i % 2
    float acc = g.zero_d ? 0.f : *g.d[i];
    for (int k = 0; k < kk; ++k) acc += row[k] * col[k];
    *g.d[i] = acc;
  }
}

}  // namespace xsep_emulation

namespace xsep {

inline void emulated_wgmma_commit() {
  xsep_emulation::committed_batches.push_back(xsep_emulation::open_batch);
  xsep_emulation::open_batch.clear();
}

inline void emulated_wgmma_wait(int pending) {
  auto& batches = xsep_emulation::committed_batches;
  while (static_cast<int>(batches.size()) > pending) {
    for (const auto& g : batches.front()) xsep_emulation::execute(g);
    batches.erase(batches.begin());
  }
}

// The hardware atom's registers and traits, with an fma that queues the MMA (see above). CuTe
// passes the accumulators (32 for N = 64, 64 for N = 128, 96 for N = 192, 128 for N = 256) as
// separate references.
#define XSEP_D8(r) float &d##r##0, float &d##r##1, float &d##r##2, float &d##r##3, float &d##r##4, float &d##r##5, \
                   float &d##r##6, float &d##r##7
#define XSEP_A8(r) &d##r##0, &d##r##1, &d##r##2, &d##r##3, &d##r##4, &d##r##5, &d##r##6, &d##r##7
template <class Element>
constexpr int element_kind() {
  return std::is_same_v<Element, cute::tfloat32_t> ? 2 : std::is_same_v<Element, cute::bfloat16_t> ? 1 : 0;
}

inline void queue_gmma(uint64_t desc_a, uint64_t desc_b, float* const* d, int count, int elem, bool a_mn_major,
                       bool b_mn_major, cute::GMMA::ScaleOut scale_d) {
  xsep_emulation::Gmma g{};
  g.desc_a = desc_a, g.desc_b = desc_b, g.n = 2 * count, g.elem = elem;
  g.a_mn_major = a_mn_major, g.b_mn_major = b_mn_major;
  g.zero_d = scale_d == cute::GMMA::ScaleOut::Zero;
  std::memcpy(g.d, d, count * sizeof(float*));
  xsep_emulation::open_batch.push_back(g);
}

// One fma per atom (CuTe passes it as a function): specialised on the accumulator count.
template <class HardwareAtom, class Element, bool kBMajorMN = false, bool kAMajorMN = false,
          int kCount = sizeof(typename HardwareAtom::CRegisters) / sizeof(float)>
struct EmulatedGmma;

template <class HardwareAtom, class Element, bool kBMajorMN, bool kAMajorMN>
struct EmulatedGmma<HardwareAtom, Element, kBMajorMN, kAMajorMN, 32> : HardwareAtom {
  static void fma(uint64_t const& desc_a, uint64_t const& desc_b, XSEP_D8(0), XSEP_D8(1), XSEP_D8(2), XSEP_D8(3),
                  cute::GMMA::ScaleOut const scale_d) {
    float* d[32] = {XSEP_A8(0), XSEP_A8(1), XSEP_A8(2), XSEP_A8(3)};
    queue_gmma(desc_a, desc_b, d, 32, element_kind<Element>(), kAMajorMN, kBMajorMN, scale_d);
  }
};

template <class HardwareAtom, class Element, bool kBMajorMN, bool kAMajorMN>
struct EmulatedGmma<HardwareAtom, Element, kBMajorMN, kAMajorMN, 64> : HardwareAtom {
  static void fma(uint64_t const& desc_a, uint64_t const& desc_b, XSEP_D8(0), XSEP_D8(1), XSEP_D8(2), XSEP_D8(3),
                  XSEP_D8(4), XSEP_D8(5), XSEP_D8(6), XSEP_D8(7), cute::GMMA::ScaleOut const scale_d) {
    float* d[64] = {XSEP_A8(0), XSEP_A8(1), XSEP_A8(2), XSEP_A8(3), XSEP_A8(4), XSEP_A8(5), XSEP_A8(6), XSEP_A8(7)};
    queue_gmma(desc_a, desc_b, d, 64, element_kind<Element>(), kAMajorMN, kBMajorMN, scale_d);
  }
};
template <class HardwareAtom, class Element, bool kBMajorMN, bool kAMajorMN>
struct EmulatedGmma<HardwareAtom, Element, kBMajorMN, kAMajorMN, 96> : HardwareAtom {  // N = 192
  static void fma(uint64_t const& desc_a, uint64_t const& desc_b, XSEP_D8(0), XSEP_D8(1), XSEP_D8(2), XSEP_D8(3),
                  XSEP_D8(4), XSEP_D8(5), XSEP_D8(6), XSEP_D8(7), XSEP_D8(8), XSEP_D8(9), XSEP_D8(10), XSEP_D8(11),
                  cute::GMMA::ScaleOut const scale_d) {
    float* d[96] = {XSEP_A8(0), XSEP_A8(1), XSEP_A8(2), XSEP_A8(3), XSEP_A8(4),  XSEP_A8(5),
                    XSEP_A8(6), XSEP_A8(7), XSEP_A8(8), XSEP_A8(9), XSEP_A8(10), XSEP_A8(11)};
    queue_gmma(desc_a, desc_b, d, 96, element_kind<Element>(), kAMajorMN, kBMajorMN, scale_d);
  }
};
template <class HardwareAtom, class Element, bool kBMajorMN, bool kAMajorMN>
struct EmulatedGmma<HardwareAtom, Element, kBMajorMN, kAMajorMN, 128> : HardwareAtom {  // N = 256
  static void fma(uint64_t const& desc_a, uint64_t const& desc_b, XSEP_D8(0), XSEP_D8(1), XSEP_D8(2), XSEP_D8(3),
                  XSEP_D8(4), XSEP_D8(5), XSEP_D8(6), XSEP_D8(7), XSEP_D8(8), XSEP_D8(9), XSEP_D8(10), XSEP_D8(11),
                  XSEP_D8(12), XSEP_D8(13), XSEP_D8(14), XSEP_D8(15), cute::GMMA::ScaleOut const scale_d) {
    float* d[128] = {XSEP_A8(0),  XSEP_A8(1),  XSEP_A8(2),  XSEP_A8(3),  XSEP_A8(4),  XSEP_A8(5),
                     XSEP_A8(6),  XSEP_A8(7),  XSEP_A8(8),  XSEP_A8(9),  XSEP_A8(10), XSEP_A8(11),
                     XSEP_A8(12), XSEP_A8(13), XSEP_A8(14), XSEP_A8(15)};
    queue_gmma(desc_a, desc_b, d, 128, element_kind<Element>(), kAMajorMN, kBMajorMN, scale_d);
  }
};
#undef XSEP_D8
#undef XSEP_A8

}  // namespace xsep

template <class HardwareAtom, class Element, bool kBMajorMN, bool kAMajorMN, int kCount>
struct cute::MMA_Traits<xsep::EmulatedGmma<HardwareAtom, Element, kBMajorMN, kAMajorMN, kCount>>
    : cute::MMA_Traits<HardwareAtom> {};
