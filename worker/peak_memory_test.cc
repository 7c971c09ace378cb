#include "worker/peak_memory.h"

#include <cstring>
#include <memory>

#include "gtest/gtest.h"

namespace evonas::worker {
namespace {

TEST(ParseVmHwmTest, ReadsKibibytes) {
  EXPECT_EQ(ParseVmHwm("Name:\tevonas-worker\nVmPeak:\t  900 kB\n"
                       "VmHWM:\t  123456 kB\nVmRSS:\t 100 kB\n"),
            int64_t{123456} * 1024);
  EXPECT_EQ(ParseVmHwm("VmRSS:\t 100 kB\n"), std::nullopt);
  EXPECT_EQ(ParseVmHwm("VmHWM:\t lots kB\n"), std::nullopt);
  EXPECT_EQ(ParseVmHwm("VmHWM:\t 12 MB\n"), std::nullopt);
  EXPECT_EQ(ParseVmHwm("VmHWM:\t -5 kB\n"), std::nullopt);
}

// The reset works on this kernel, the peak follows a large allocation that
// is touched, and a reset after freeing it brings the peak back down.
TEST(PeakMemoryTest, FollowsAnAllocationAndResets) {
  ASSERT_TRUE(ResetPeakMemory());
  const std::optional<int64_t> before = PeakMemoryBytes();
  ASSERT_TRUE(before.has_value());
  constexpr int64_t kBytes = int64_t{256} << 20;
  {
    std::unique_ptr<char[]> block(new char[kBytes]);
    std::memset(block.get(), 1, kBytes);  // resident only once touched
    const std::optional<int64_t> during = PeakMemoryBytes();
    ASSERT_TRUE(during.has_value());
    EXPECT_GE(*during - *before, kBytes * 9 / 10);
    // Keeps the compiler from dropping the block.
    EXPECT_EQ(block[kBytes - 1], 1);
  }
  ASSERT_TRUE(ResetPeakMemory());
  const std::optional<int64_t> after = PeakMemoryBytes();
  ASSERT_TRUE(after.has_value());
  EXPECT_LT(*after, *before + kBytes / 2);
}

}  // namespace
}  // namespace evonas::worker
