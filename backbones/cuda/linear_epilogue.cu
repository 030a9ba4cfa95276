// One bf16 linear layer on Hopper (sm_90a) with its element-wise follow-up fused into the
// product's epilogue, through CUTLASS 3's warp-specialized TMA kernels:
//
//   BLIP_OP_GELU:     out = F.gelu(bf16(x @ w^T + bias))   (exact GELU of the bf16 product,
//                                                          as F.gelu after a bf16 F.linear)
//   BLIP_OP_RESIDUAL: out = residual + (x @ w^T + bias)
//
// x [M, K], w [N, K] (nn.Linear's layout), bias [N], residual and out [M, N], all bf16 and
// contiguous. The sum and bias (and the residual add) are computed in fp32 and rounded to bf16
// once; the GELU then takes that bf16 value and reads F.gelu's own result for it from a table
// (GeluOfBf16), so it equals the unfused bf16 path wherever the products' sums round alike.
// Each (operation, tile configuration) pair is compiled from this file separately
// (-DBLIP_OP=..., -DBLIP_CONFIG=...) so that the build runs them in parallel; each object
// exports C functions named after the pair (see BLIP_EXPORT below), loaded by
// backbones/fused_linear.py through ctypes.
#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/kernel/gemm_universal.hpp"

#define BLIP_OP_GELU 0
#define BLIP_OP_RESIDUAL 1

namespace {

using namespace cute;

#if BLIP_OP == BLIP_OP_GELU
// GELU of a float sum rounded to bf16, as F.gelu computes it on a bf16 tensor, without an erf
// (whose polynomial made the epilogue cost more than the table read does): bf16 values of
// magnitude in [2^-10, 8) read their result from a table the caller fills with F.gelu's own
// outputs (sign, exponent, 7 mantissa bits -> 2 x 13 x 128 bf16 entries); the rest follow from
// F.gelu's formula 0.5x(1 + erf(x/sqrt 2)) in float: below 2^-10, erf(x/sqrt 2) moves 1 + erf
// by less than half a bf16 unit, so the result rounds to x/2; at 8 and above, erf rounds to 1
// in float (x); at -8 and below to -1 (-0.0, and NaN for -inf); NaN stays NaN.
constexpr uint32_t kTableLowExponent = 117;  // 2^-10, as a biased bf16/float exponent
constexpr uint32_t kTableExponents = 13;     // up to 2^3 = 8 (exclusive)
constexpr int kTableEntries = 2 * kTableExponents * 128;
constexpr int kTableBytes = kTableEntries * int(sizeof(uint16_t));

// The table's source in global memory (set by blip_linear_set_table_*); each CTA copies it
// into shared memory behind the kernel's own storage before the kernel starts.
__device__ __align__(16) uint16_t gelu_table_source[kTableEntries];

// F.gelu of one bf16 value (its bit pattern), branch-free so that an unrolled fragment issues
// all of its table reads before it waits for them.
CUTLASS_DEVICE float gelu_of_bf16_bits(uint32_t bits, const uint16_t* table) {
  // The table's rows of one sign are consecutive bf16 magnitudes from 2^-10 on.
  constexpr uint32_t kFirstMagnitude = kTableLowExponent << 7;
  constexpr uint32_t kEntriesPerSign = kTableExponents << 7;
  uint32_t magnitude = bits & 0x7FFFu;
  uint32_t position = magnitude - kFirstMagnitude;  // wraps above the table below 2^-10
  bool in_table = position < kEntriesPerSign;
  uint32_t index = in_table ? position + (bits >> 15) * kEntriesPerSign : 0u;
  float looked_up = __uint_as_float(uint32_t(table[index]) << 16);
  float rounded = __uint_as_float(bits << 16);
  // x * 0 gives -0.0 for x <= -8 and NaN for -inf, as the formula does.
  float large = (bits >> 15) ? rounded * 0.0f : rounded;
  float outside = magnitude < kFirstMagnitude ? rounded * 0.5f : large;
  return in_table ? looked_up : outside;
}

CUTLASS_DEVICE const uint16_t* gelu_table(int table_offset) {
  extern __shared__ char blip_dynamic_smem[];
  return reinterpret_cast<const uint16_t*>(blip_dynamic_smem + table_offset);
}

// The activation's one argument: where the table starts in dynamic shared memory (bytes).
struct GeluTableArguments {
  int table_offset = 0;
};

// CUTLASS's epilogue takes the activation's argument type from its scalar form and calls the
// fragment form (below) only.
template <class T>
struct GeluOfBf16 {
  using Arguments = GeluTableArguments;
};

template <class T, int N>
struct GeluOfBf16<cutlass::Array<T, N>> {
  static_assert(N % 2 == 0, "fragments are rounded to bf16 in pairs");
  using Arguments = GeluTableArguments;

  CUTLASS_DEVICE cutlass::Array<T, N> operator()(cutlass::Array<T, N> const& sums,
                                                 Arguments const& args) const {
    const uint16_t* table = gelu_table(args.table_offset);
    cutlass::Array<T, N> out;
    CUTLASS_PRAGMA_UNROLL
    for (int i = 0; i < N; i += 2) {
      __nv_bfloat162 pair = __floats2bfloat162_rn(sums[i], sums[i + 1]);
      uint32_t bits = *reinterpret_cast<uint32_t*>(&pair);
      out[i] = gelu_of_bf16_bits(bits & 0xFFFFu, table);
      out[i + 1] = gelu_of_bf16_bits(bits >> 16, table);
    }
    return out;
  }
};
#endif  // BLIP_OP_GELU

using Bf16 = cutlass::bfloat16_t;
constexpr int kAlignment = 8;  // bf16 elements per 16-byte access

#if BLIP_CONFIG == 0  // one tile per consumer warp group, the two alternating (ping-pong)
using TileShape = Shape<_128, _128, _64>;
using ClusterShape = Shape<_2, _1, _1>;
using MainloopSchedule = cutlass::gemm::KernelTmaWarpSpecializedPingpong;
using EpilogueSchedule = cutlass::epilogue::TmaWarpSpecialized;
#elif BLIP_CONFIG == 1  // both consumer warp groups on one larger tile (cooperative)
using TileShape = Shape<_128, _256, _64>;
using ClusterShape = Shape<_1, _2, _1>;
using MainloopSchedule = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
using EpilogueSchedule = cutlass::epilogue::TmaWarpSpecializedCooperative;
#elif BLIP_CONFIG == 2  // cooperative, the tile taller than wide
using TileShape = Shape<_256, _128, _64>;
using ClusterShape = Shape<_2, _1, _1>;
using MainloopSchedule = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
using EpilogueSchedule = cutlass::epilogue::TmaWarpSpecializedCooperative;
#else
#error "BLIP_CONFIG must be 0, 1 or 2"
#endif

#if BLIP_OP == BLIP_OP_GELU
using Source = void;  // no C operand
using Fusion = cutlass::epilogue::fusion::LinCombPerColBiasEltAct<
    GeluOfBf16, Bf16, float, Bf16, Bf16, float>;
constexpr int kTableCarveout = kTableBytes + 128;  // the table, aligned behind the kernel's own
#elif BLIP_OP == BLIP_OP_RESIDUAL
using Source = Bf16;  // the residual, added with beta = 1
using Fusion = cutlass::epilogue::fusion::LinCombPerColBias<Bf16, float, Bf16, Bf16, float>;
constexpr int kTableCarveout = 0;
#else
#error "BLIP_OP must be BLIP_OP_GELU or BLIP_OP_RESIDUAL"
#endif

using RowMajor = cutlass::layout::RowMajor;        // x, residual, out: [rows, features]
using ColumnMajor = cutlass::layout::ColumnMajor;  // w as CUTLASS's K x N operand

using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
    cutlass::epilogue::collective::EpilogueTileAuto, float, float,
    Source, RowMajor, kAlignment, Bf16, RowMajor, kAlignment,
    EpilogueSchedule, Fusion>::CollectiveOp;

using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
    Bf16, RowMajor, kAlignment, Bf16, ColumnMajor, kAlignment, float,
    TileShape, ClusterShape,
    cutlass::gemm::collective::StageCountAutoCarveout<
        static_cast<int>(sizeof(typename Epilogue::SharedStorage)) + kTableCarveout>,
    MainloopSchedule>::CollectiveOp;

using BaseKernel = cutlass::gemm::kernel::GemmUniversal<
    Shape<int, int, int, int>, Mainloop, Epilogue>;

#if BLIP_OP == BLIP_OP_GELU
// The kernel with the GELU table behind its shared storage, copied in before it starts.
struct Kernel : BaseKernel {
  static constexpr int TableOffset = (BaseKernel::SharedStorageSize + 127) / 128 * 128;
  static constexpr int SharedStorageSize = TableOffset + kTableBytes;

  CUTLASS_DEVICE void operator()(typename BaseKernel::Params const& params, char* smem) {
    auto* table = reinterpret_cast<uint4*>(smem + TableOffset);
    auto const* source = reinterpret_cast<uint4 const*>(gelu_table_source);
    for (int i = threadIdx.x; i < kTableBytes / 16; i += blockDim.x) table[i] = source[i];
    __syncthreads();
    BaseKernel::operator()(params, smem);
  }
};
#else
using Kernel = BaseKernel;
#endif
using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

Gemm::Arguments arguments(const void* x, const void* w, const void* bias,
                          const void* residual, void* out, int m, int n, int k,
                          int sm_count, int device) {
  using StrideA = typename Kernel::StrideA;
  using StrideB = typename Kernel::StrideB;
  using StrideC = typename Kernel::StrideC;
  using StrideD = typename Kernel::StrideD;
  StrideA stride_x{int64_t(k), Int<1>{}, int64_t(m) * k};
  StrideB stride_w{int64_t(k), Int<1>{}, int64_t(n) * k};
  StrideC stride_residual{int64_t(n), Int<1>{}, int64_t(m) * n};
  StrideD stride_out{int64_t(n), Int<1>{}, int64_t(m) * n};
  Gemm::Arguments args{
      cutlass::gemm::GemmUniversalMode::kGemm,
      {m, n, k, 1},
      {static_cast<const Bf16*>(x), stride_x, static_cast<const Bf16*>(w), stride_w},
      {{}, static_cast<const typename Epilogue::ElementC*>(residual), stride_residual,
       static_cast<Bf16*>(out), stride_out}};
  args.epilogue.thread.alpha = 1.0f;
  args.epilogue.thread.beta = residual == nullptr ? 0.0f : 1.0f;
  args.epilogue.thread.bias_ptr = static_cast<const Bf16*>(bias);
#if BLIP_OP == BLIP_OP_GELU
  args.epilogue.thread.activation.table_offset = Kernel::TableOffset;
#endif
  args.hw_info.device_id = device;
  args.hw_info.sm_count = sm_count;
  return args;
}

}  // namespace

#define BLIP_JOIN(a, b, c) a##_##b##_##c
#define BLIP_NAME(stem, op, config) BLIP_JOIN(stem, op, config)
#define BLIP_EXPORT(stem) BLIP_NAME(stem, BLIP_OP, BLIP_CONFIG)

// Bytes of device workspace the product needs (allocate before calling blip_linear_run_*).
extern "C" size_t BLIP_EXPORT(blip_linear_workspace)(int m, int n, int k, int sm_count) {
  return Gemm::get_workspace_size(
      arguments(nullptr, nullptr, nullptr, nullptr, nullptr, m, n, k, sm_count, 0));
}

#if BLIP_OP == BLIP_OP_GELU
// Copies the GELU table (kTableEntries bf16 bit patterns, in GeluOfBf16's order, on the
// current device) to where each kernel reads it from; before the first product on a device.
extern "C" int BLIP_EXPORT(blip_linear_set_table)(const void* source, cudaStream_t stream) {
  return static_cast<int>(cudaMemcpyToSymbolAsync(gelu_table_source, source, kTableBytes, 0,
                                                  cudaMemcpyDeviceToDevice, stream));
}
#endif

// Runs the product on `stream`; returns 0, or a nonzero cutlass::Status / 1000 + cudaError_t.
extern "C" int BLIP_EXPORT(blip_linear_run)(const void* x, const void* w, const void* bias,
                                            const void* residual, void* out, int m, int n,
                                            int k, int sm_count, int device,
                                            void* workspace, cudaStream_t stream) {
  Gemm gemm;
  Gemm::Arguments args = arguments(x, w, bias, residual, out, m, n, k, sm_count, device);
  cutlass::Status status = gemm.can_implement(args);
  if (status != cutlass::Status::kSuccess) return static_cast<int>(status);
  status = gemm.run(args, workspace, stream);
  if (status != cutlass::Status::kSuccess) return static_cast<int>(status);
  cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? 0 : 1000 + static_cast<int>(error);
}
