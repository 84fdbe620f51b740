// better_blas_kernel: the advice `kiln info` gives when OpenBLAS falls back to an old kernel.
#include "core/runtime/cpu.h"

#include <gtest/gtest.h>

#include <string>

namespace {

std::string advice(const char* kernel, const char* isa) {
  const char* better = kiln::better_blas_kernel(kernel, isa);
  return better == nullptr ? "none" : better;
}

TEST(BetterBlasKernel, AFallbackKernelOnAVectorCpuGetsTheMatchingKernel) {
  // What OpenBLAS 0.3.21 chose on an Intel Xeon of family 6 model 207.
  EXPECT_EQ(advice("Prescott", "AVX-512"), "SkylakeX");
  EXPECT_EQ(advice("Core2", "AVX2"), "Haswell");
  EXPECT_EQ(advice("NEHALEM", "AVX"), "Sandybridge");  // OpenBLAS' names, in any case
}

TEST(BetterBlasKernel, AKernelThatUsesTheVectorsIsLeftAlone) {
  EXPECT_EQ(advice("SkylakeX", "AVX-512"), "none");
  EXPECT_EQ(advice("Cooperlake", "AVX-512"), "none");
  EXPECT_EQ(advice("Zen", "AVX2"), "none");
  EXPECT_EQ(advice("Haswell", "AVX-512"), "none");  // chosen by the user, e.g. for the AVX2 path
}

TEST(BetterBlasKernel, NoAdviceWithoutVectorsOrWithoutNames) {
  EXPECT_EQ(advice("Prescott", "SSE2"), "none");
  EXPECT_EQ(advice("Prescott", "not x86"), "none");
  EXPECT_EQ(advice(nullptr, "AVX-512"), "none");
  EXPECT_EQ(advice("Prescott", nullptr), "none");
}

}  // namespace
