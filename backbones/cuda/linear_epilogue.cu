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
// backbones/cutlass_kernels.py through ctypes.
#include <cstdint>
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
// GELU of a sum rounded to bf16, as F.gelu computes it on a bf16 tensor, without an erf (whose
// polynomial made the epilogue cost more than a table read does). The caller fills the table
// with F.gelu's own outputs; for each sign it holds, in order:
//   - a multiplier for magnitudes below 2^-10: 0.5 (there erf(x/sqrt 2) moves 1 + erf by less
//     than half a bf16 unit, so F.gelu's 0.5x(1 + erf(x/sqrt 2)) in float rounds to x/2);
//   - F.gelu of every bf16 magnitude in [2^-10, 8) (13 exponents x 128 mantissas);
//   - a multiplier for 8 and above: 1 for x > 0 (erf rounds to 1 in float), 0 for x < 0
//     (-0.0 as the formula gives, NaN for -inf); NaN stays NaN either way.
// A value's magnitude, as an offset from 2^-10 clamped to one entry either side of the range,
// picks its entry: inside the range the entry is the result, outside it multiplies the value.
constexpr int kTableLowExponent = 117;  // 2^-10, as a biased bf16/float exponent
constexpr int kTableExponents = 13;     // up to 2^3 = 8 (exclusive)
constexpr int kInRange = kTableExponents * 128;
constexpr int kEntriesPerSign = kInRange + 2;
constexpr int kTableBytes = (2 * kEntriesPerSign * int(sizeof(uint16_t)) + 15) / 16 * 16;

// The table's source in global memory (set by blip_linear_set_table_*); each CTA copies it
// into shared memory behind the kernel's own storage before the kernel starts.
__device__ __align__(16) uint16_t gelu_table_source[kTableBytes / sizeof(uint16_t)];

// F.gelu of one bf16 value (its bit pattern), branch-free so that an unrolled fragment issues
// all of its table reads before it waits for them.
CUTLASS_DEVICE float gelu_of_bf16_bits(uint32_t bits, const uint16_t* table) {
  int offset = int(bits & 0x7FFFu) - (kTableLowExponent << 7);
  int clamped = min(max(offset, -1), kInRange);
  int index = clamped + 1 + int(bits >> 15) * kEntriesPerSign;
  float entry = __uint_as_float(uint32_t(table[index]) << 16);
  bool in_range = uint32_t(offset) < uint32_t(kInRange);
  return in_range ? entry : __uint_as_float(bits << 16) * entry;
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
// fragment form (below) only, on the sums already rounded to bf16 (the node's compute type).
template <class T>
struct GeluOfBf16 {
  using Arguments = GeluTableArguments;
};

template <int N>
struct GeluOfBf16<cutlass::Array<cutlass::bfloat16_t, N>> {
  static_assert(N % 2 == 0, "fragments are read as pairs of bf16 values");
  using Arguments = GeluTableArguments;

  CUTLASS_DEVICE cutlass::Array<float, N> operator()(
      cutlass::Array<cutlass::bfloat16_t, N> const& sums, Arguments const& args) const {
    const uint16_t* table = gelu_table(args.table_offset);
    const uint32_t* pairs = reinterpret_cast<const uint32_t*>(&sums);
    cutlass::Array<float, N> out;
    CUTLASS_PRAGMA_UNROLL
    for (int i = 0; i < N; i += 2) {
      out[i] = gelu_of_bf16_bits(pairs[i / 2] & 0xFFFFu, table);
      out[i + 1] = gelu_of_bf16_bits(pairs[i / 2] >> 16, table);
    }
    return out;
  }
};
#endif  // BLIP_OP_GELU

using Bf16 = cutlass::bfloat16_t;
constexpr int kAlignment = 8;  // bf16 elements per 16-byte access
// CUTLASS's epilogue subtiles: 128 x 32 for the cooperative schedules, 64 x 32 for ping-pong
using AutoEpilogueTile = cutlass::epilogue::collective::EpilogueTileAuto;

#if BLIP_CONFIG == 0  // one tile per consumer warp group, the two alternating (ping-pong)
using TileShape = Shape<_128, _128, _64>;
using ClusterShape = Shape<_2, _1, _1>;
using MainloopSchedule = cutlass::gemm::KernelTmaWarpSpecializedPingpong;
using EpilogueSchedule = cutlass::epilogue::TmaWarpSpecialized;
using EpilogueTile = AutoEpilogueTile;
#elif BLIP_CONFIG == 1  // both consumer warp groups on one larger tile (cooperative)
using TileShape = Shape<_128, _256, _64>;
using ClusterShape = Shape<_1, _2, _1>;
using MainloopSchedule = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
using EpilogueSchedule = cutlass::epilogue::TmaWarpSpecializedCooperative;
using EpilogueTile = AutoEpilogueTile;
#elif BLIP_CONFIG == 2  // cooperative, the tile taller than wide
using TileShape = Shape<_256, _128, _64>;
using ClusterShape = Shape<_2, _1, _1>;
using MainloopSchedule = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
using EpilogueSchedule = cutlass::epilogue::TmaWarpSpecializedCooperative;
using EpilogueTile = AutoEpilogueTile;
#elif BLIP_CONFIG == 3  // ping-pong as 0, epilogue in 64x64 subtiles (the GELU product's best)
using TileShape = Shape<_128, _128, _64>;
using ClusterShape = Shape<_2, _1, _1>;
using MainloopSchedule = cutlass::gemm::KernelTmaWarpSpecializedPingpong;
using EpilogueSchedule = cutlass::epilogue::TmaWarpSpecialized;
using EpilogueTile = Shape<_64, _64>;
#elif BLIP_CONFIG == 4  // ping-pong as 3, clustered along N (the residual products' best)
using TileShape = Shape<_128, _128, _64>;
using ClusterShape = Shape<_1, _2, _1>;
using MainloopSchedule = cutlass::gemm::KernelTmaWarpSpecializedPingpong;
using EpilogueSchedule = cutlass::epilogue::TmaWarpSpecialized;
using EpilogueTile = Shape<_64, _64>;
#else
#error "BLIP_CONFIG must be 0 to 4"
#endif

#if BLIP_OP == BLIP_OP_GELU
using Source = void;  // no C operand
// GeluOfBf16(bf16(acc + bias)): the sum in fp32 (no alpha or beta to apply), rounded to bf16
// to nearest by the GELU node's conversion to its compute type.
namespace fusion = cutlass::epilogue::fusion;
constexpr auto kToNearest = cutlass::FloatRoundStyle::round_to_nearest;
using Fusion = fusion::Sm90EVT<
    fusion::Sm90Compute<GeluOfBf16, Bf16, Bf16, kToNearest>,
    fusion::Sm90EVT<fusion::Sm90Compute<cutlass::plus, float, float, kToNearest>,
                    fusion::Sm90AccFetch,
                    fusion::Sm90RowBroadcast<0, TileShape, Bf16, float, Stride<_0, _1, int64_t>,
                                             kAlignment>>>;
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
    EpilogueTile, float, float,
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
#if BLIP_OP == BLIP_OP_GELU
  // the tree's arguments, children first: {{acc, bias, plus}, GELU}
  args.epilogue.thread = {{{}, {static_cast<const Bf16*>(bias), Bf16(0), {}}, {}},
                          {Kernel::TableOffset}};
#else
  args.epilogue.thread.alpha = 1.0f;
  args.epilogue.thread.beta = 1.0f;
  args.epilogue.thread.bias_ptr = static_cast<const Bf16*>(bias);
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
// Copies the GELU table (kTableBytes of bf16 bit patterns, in gelu_of_bf16_bits' order, on the
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
