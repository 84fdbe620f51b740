// better_blas_kernel: the advice `kiln info` gives when OpenBLAS falls back to an old kernel;
// compiled_vector_bits: the vector width printed beside the ISA kiln was built for.
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

// The vector width printed beside the ISA must be one that ISA has: 512-bit vectors only in a
// build for AVX-512, and with it unless the build held them to 256 bits (KILN_VECTOR_WIDTH).
TEST(CompiledVectors, TheWidthMatchesTheInstructionSet) {
  const std::string isa = kiln::compiled_vector_isa();
  const int bits = kiln::compiled_vector_bits();
  if (isa == "AVX-512") EXPECT_TRUE(bits == 512 || bits == 256) << bits;
  else if (isa == "AVX2" || isa == "AVX") EXPECT_EQ(bits, 256);
  else EXPECT_EQ(bits, 128) << isa;
#if defined(KILN_VECTOR_WIDTH) && KILN_VECTOR_WIDTH == 512
  if (isa == "AVX-512") EXPECT_EQ(bits, 512);
#endif
}
