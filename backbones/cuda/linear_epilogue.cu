// One bf16 linear layer on Hopper (sm_90a) with its element-wise follow-up fused into the
// product's epilogue, through CUTLASS 3's warp-specialized TMA kernels:
//
//   BLIP_OP_GELU:     out = gelu(x @ w^T + bias)              (exact, erf GELU, as nn.GELU)
//   BLIP_OP_RESIDUAL: out = residual + (x @ w^T + bias)
//
// x [M, K], w [N, K] (nn.Linear's layout), bias [N], residual and out [M, N], all bf16 and
// contiguous; the sum, bias, GELU and residual add are computed in fp32 and rounded to bf16
// once. Each (operation, tile configuration) pair is compiled from this file separately
// (-DBLIP_OP=..., -DBLIP_CONFIG=...) so that the build runs them in parallel; each object
// exports two C functions named after the pair (see BLIP_EXPORT below), loaded by
// backbones/fused_linear.py through ctypes.
#include <cstdint>
#include <cuda_runtime.h>

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/thread/activation.h"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/kernel/gemm_universal.hpp"

#define BLIP_OP_GELU 0
#define BLIP_OP_RESIDUAL 1

namespace {

using namespace cute;
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
    cutlass::epilogue::thread::GELU, Bf16, float, Bf16, Bf16, float>;
#elif BLIP_OP == BLIP_OP_RESIDUAL
using Source = Bf16;  // the residual, added with beta = 1
using Fusion = cutlass::epilogue::fusion::LinCombPerColBias<Bf16, float, Bf16, Bf16, float>;
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
        static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
    MainloopSchedule>::CollectiveOp;

using Kernel = cutlass::gemm::kernel::GemmUniversal<
    Shape<int, int, int, int>, Mainloop, Epilogue>;
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
