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
// polynomial made the epilogue cost more than a table read does), two values at a time. Each
// value's magnitude, as an offset from 2^-10 clamped to one row either side of [2^-10, 8),
// picks a row of a table that the caller fills from F.gelu's own outputs; a row is a word of
// two bf16 values (scale, addend), and the result is the bf16 fma value * scale + addend:
//   - row 0, magnitudes below 2^-10: (0.5, -0.0), i.e. x/2 (there erf(x/sqrt 2) moves 1 + erf
//     by less than half a bf16 unit, so F.gelu's 0.5x(1 + erf(x/sqrt 2)) in float rounds to x/2);
//   - rows 1 to kInRange, every bf16 magnitude in [2^-10, 8) (13 exponents x 128 mantissas):
//     (0, F.gelu of the value), i.e. F.gelu's result itself;
//   - row kInRange + 1, 8 and above: (1, -0.0) for x > 0 (erf rounds to 1 in float) and
//     (0, -0.0) for x < 0 (-0.0 as the formula gives, NaN for -inf); NaN stays NaN either way.
// Negative values' rows start kSignStride rows after positive ones'.
constexpr int kTableLowExponent = 117;  // 2^-10, as a biased bf16/float exponent
constexpr int kTableExponents = 13;     // up to 2^3 = 8 (exclusive)
constexpr int kInRange = kTableExponents * 128;
constexpr int kSignStride = 2048;  // rows; a power of two above kInRange + 2 (see row_bytes)
// the table sits in front of the kernel's own shared storage: a whole number of KiB keeps the
// kernel's storage as aligned as the dynamic shared memory's start
constexpr int kTableBytes = ((kSignStride + kInRange + 2) * 4 + 1023) / 1024 * 1024;
static_assert(kInRange + 2 <= kSignStride, "a row's byte offset must not reach the sign's");

// The table's source in global memory (set by blip_linear_set_table_*); each CTA copies it
// into the start of its shared memory before the kernel starts.
__device__ __align__(16) uint32_t gelu_table_source[kTableBytes / sizeof(uint32_t)];

CUTLASS_DEVICE uint32_t table_row(uint32_t byte_offset) {
  extern __shared__ char blip_dynamic_smem[];
  return *reinterpret_cast<const uint32_t*>(blip_dynamic_smem + byte_offset);
}

// F.gelu of the two bf16 values of `pair` (low and high halves), branch-free with 16-bit SIMD
// (one of Hopper's DPX add-min-max instructions) so that a fragment issues all of its table
// reads together.
CUTLASS_DEVICE uint32_t gelu_of_bf16_pair(uint32_t pair) {
  // minus the magnitude just below 2^-10, in each half
  constexpr uint32_t kMinusRowZero = uint16_t(1 - (kTableLowExponent << 7)) * 0x00010001u;
  constexpr uint32_t kLastRow = uint32_t(kInRange + 1) * 0x00010001u;
  constexpr uint32_t kSignBytes = uint32_t(kSignStride * 4) * 0x00010001u;
  static_assert(kSignStride * 4 == 1 << 13, "the sign bit (15) shifted right by 2 is the offset");
  // each half's row: its magnitude's offset from the one just below 2^-10, clamped to
  // [0, kInRange + 1] (one add-min-max instruction for both halves)
  uint32_t row = __viaddmin_s16x2_relu(pair & 0x7FFF7FFFu, kMinusRowZero, kLastRow);
  uint32_t row_bytes = (row << 2) | ((pair >> 2) & kSignBytes);
  uint32_t low = table_row(row_bytes & 0xFFFFu), high = table_row(row_bytes >> 16);
  uint32_t scale = __byte_perm(low, high, 0x5410), addend = __byte_perm(low, high, 0x7632);
  uint32_t gelu;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(gelu) : "r"(pair), "r"(scale), "r"(addend));
  return gelu;
}

// CUTLASS's epilogue calls the activation's fragment form (below) only, on the sums already
// rounded to bf16 (the node's compute type), and keeps its bf16 results as they are.
template <class T>
struct GeluOfBf16 {};

template <int N>
struct GeluOfBf16<cutlass::Array<cutlass::bfloat16_t, N>> {
  static_assert(N % 2 == 0, "fragments are read as pairs of bf16 values");

  CUTLASS_DEVICE cutlass::Array<cutlass::bfloat16_t, N> operator()(
      cutlass::Array<cutlass::bfloat16_t, N> const& sums) const {
    cutlass::Array<cutlass::bfloat16_t, N> out;
    const uint32_t* pairs = reinterpret_cast<const uint32_t*>(&sums);
    uint32_t* gelus = reinterpret_cast<uint32_t*>(&out);
    CUTLASS_PRAGMA_UNROLL
    for (int i = 0; i < N / 2; ++i) gelus[i] = gelu_of_bf16_pair(pairs[i]);
    return out;
  }
};
#endif  // BLIP_OP_GELU

using Bf16 = cutlass::bfloat16_t;
constexpr int kAlignment = 8;  // bf16 elements per 16-byte access
// Every configuration is CUTLASS's ping-pong kernel: each of the two consumer warp groups owns a
// tile and they take turns, one's epilogue overlapping the other's products. They differ in the
// tile's width, the cluster's direction (which operand TMA multicasts) and the epilogue subtile
// (CUTLASS's automatic one is 64 x 32). The cooperative kernels (both warp groups on one 128x256
// or 256x128 tile) were 11-60% slower than the best of these at the ViT's shapes on an H100
// (twentieth session), and are not built.
using MainloopSchedule = cutlass::gemm::KernelTmaWarpSpecializedPingpong;
using EpilogueSchedule = cutlass::epilogue::TmaWarpSpecialized;
using AutoEpilogueTile = cutlass::epilogue::collective::EpilogueTileAuto;

#if BLIP_CONFIG == 0  // 128x128 tiles, clustered along M
using TileShape = Shape<_128, _128, _64>;
using ClusterShape = Shape<_2, _1, _1>;
using EpilogueTile = AutoEpilogueTile;
#elif BLIP_CONFIG == 1  // as 0, epilogue in 64x64 subtiles
using TileShape = Shape<_128, _128, _64>;
using ClusterShape = Shape<_2, _1, _1>;
using EpilogueTile = Shape<_64, _64>;
#elif BLIP_CONFIG == 2  // as 1, clustered along N
using TileShape = Shape<_128, _128, _64>;
using ClusterShape = Shape<_1, _2, _1>;
using EpilogueTile = Shape<_64, _64>;
#elif BLIP_CONFIG == 3  // 128x192 tiles, clustered along M
using TileShape = Shape<_128, _192, _64>;
using ClusterShape = Shape<_2, _1, _1>;
using EpilogueTile = AutoEpilogueTile;
#elif BLIP_CONFIG == 4  // as 3, epilogue in 64x64 subtiles, clustered along N (the ViT's best)
using TileShape = Shape<_128, _192, _64>;
using ClusterShape = Shape<_1, _2, _1>;
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
constexpr int kTableCarveout = kTableBytes;
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
// The kernel with the GELU table in front of its shared storage, copied in before it starts.
struct Kernel : BaseKernel {
  static constexpr int SharedStorageSize = kTableBytes + BaseKernel::SharedStorageSize;

  CUTLASS_DEVICE void operator()(typename BaseKernel::Params const& params, char* smem) {
    auto* table = reinterpret_cast<uint4*>(smem);
    auto const* source = reinterpret_cast<uint4 const*>(gelu_table_source);
    for (int i = threadIdx.x; i < kTableBytes / 16; i += blockDim.x) table[i] = source[i];
    __syncthreads();
    BaseKernel::operator()(params, smem + kTableBytes);
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
  args.epilogue.thread = {{{}, {static_cast<const Bf16*>(bias), Bf16(0), {}}, {}}, {}};
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
// Copies the GELU table (kTableBytes of rows, in gelu_of_bf16_pair's order, on the
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
