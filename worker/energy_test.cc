#include "worker/energy.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace evonas::worker {
namespace {

namespace fs = std::filesystem;

// A fake /sys/class/powercap in a temporary directory.
class FakePowercap : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("energy_" + std::string(::testing::UnitTest::GetInstance()
                                        ->current_test_info()
                                        ->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void Zone(const std::string& zone, const std::string& name, int64_t energy,
            int64_t range) {
    fs::create_directories(dir_ / zone);
    Write(zone + "/name", name + "\n");
    SetEnergy(zone, energy);
    Write(zone + "/max_energy_range_uj", std::to_string(range) + "\n");
  }
  void SetEnergy(const std::string& zone, int64_t energy) {
    Write(zone + "/energy_uj", std::to_string(energy) + "\n");
  }
  void Write(const std::string& file, const std::string& text) {
    std::ofstream(dir_ / file) << text;
  }
  std::string dir() const { return dir_.string(); }

  fs::path dir_;
};

TEST_F(FakePowercap, SumsPackagesOnlyAndHandlesWrapAround) {
  Zone("intel-rapl:0", "package-0", 1'000'000, 10'000'000);
  Zone("intel-rapl:1", "package-1", 9'500'000, 10'000'000);
  // Included in a package, or including one: never added.
  Zone("intel-rapl:0:0", "core", 0, 10'000'000);
  Zone("intel-rapl:2", "psys", 0, 10'000'000);
  Zone("intel-rapl-mmio:0", "package-0", 0, 10'000'000);

  absl::StatusOr<RaplCounters> counters = RaplCounters::Open(dir());
  ASSERT_TRUE(counters.ok()) << counters.status();
  EXPECT_EQ(counters->files().size(), 2u);

  EnergyMeter meter(dir(), kDefaultWattsPerCore);
  meter.Start();
  SetEnergy("intel-rapl:0", 3'500'000);  // +2.5 J
  SetEnergy("intel-rapl:1", 500'000);    // wrapped: +1 J
  SetEnergy("intel-rapl:0:0", 7'000'000);
  SetEnergy("intel-rapl:2", 7'000'000);
  SetEnergy("intel-rapl-mmio:0", 7'000'000);
  v1::Metrics metrics;
  metrics.set_training_cpu_seconds(100);
  meter.Finish(metrics);
  EXPECT_EQ(metrics.energy_source(), v1::ENERGY_SOURCE_RAPL);
  EXPECT_NEAR(metrics.training_energy_joules(), 3.5, 1e-12);
}

TEST_F(FakePowercap, SamplingCountsSeveralWraps) {
  Zone("intel-rapl:0", "package-0", 0, 1'000'000);
  EnergyMeter meter(dir(), kDefaultWattsPerCore);
  meter.Sample();  // before Start: not counted
  meter.Start();
  // Three wraps of a 1 J counter, each seen by a sample: 0.8 J each.
  for (int64_t value : {800'000, 600'000, 400'000}) {
    SetEnergy("intel-rapl:0", value);
    meter.Sample();
  }
  SetEnergy("intel-rapl:0", 200'000);
  v1::Metrics metrics;
  meter.Finish(metrics);
  EXPECT_EQ(metrics.energy_source(), v1::ENERGY_SOURCE_RAPL);
  EXPECT_NEAR(metrics.training_energy_joules(), 3.2, 1e-12);
}

TEST_F(FakePowercap, NoRaplEstimatesFromCpuSeconds) {
  EXPECT_EQ(RaplCounters::Open(dir()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(RaplCounters::Open((dir_ / "missing").string()).status().code(),
            absl::StatusCode::kNotFound);
  EnergyMeter meter(dir(), 12.5);
  meter.Start();
  v1::Metrics metrics;
  metrics.set_training_cpu_seconds(4.0);
  meter.Finish(metrics);
  EXPECT_EQ(metrics.energy_source(), v1::ENERGY_SOURCE_ESTIMATED);
  EXPECT_DOUBLE_EQ(metrics.training_energy_joules(), 50.0);
}

TEST_F(FakePowercap, UnreadableCounterEstimates) {
  // A directory where the counter should be: read() fails even for root.
  Zone("intel-rapl:0", "package-0", 0, 1'000'000);
  fs::remove(dir_ / "intel-rapl:0/energy_uj");
  fs::create_directories(dir_ / "intel-rapl:0/energy_uj");
  absl::StatusOr<RaplCounters> counters = RaplCounters::Open(dir());
  EXPECT_EQ(counters.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(counters.status().message().find("energy_uj"), std::string::npos)
      << counters.status();

  EnergyMeter meter(dir(), 10.0);
  meter.Start();
  v1::Metrics metrics;
  metrics.set_training_cpu_seconds(2.0);
  meter.Finish(metrics);
  EXPECT_EQ(metrics.energy_source(), v1::ENERGY_SOURCE_ESTIMATED);
  EXPECT_DOUBLE_EQ(metrics.training_energy_joules(), 20.0);
}

TEST_F(FakePowercap, NotStartedIsEstimated) {
  Zone("intel-rapl:0", "package-0", 0, 1'000'000);
  EnergyMeter meter(dir(), 10.0);
  SetEnergy("intel-rapl:0", 100'000);
  v1::Metrics metrics;
  metrics.set_training_cpu_seconds(1.0);
  meter.Finish(metrics);
  EXPECT_EQ(metrics.energy_source(), v1::ENERGY_SOURCE_ESTIMATED);
  EXPECT_DOUBLE_EQ(metrics.training_energy_joules(), 10.0);
}

TEST_F(FakePowercap, GarbageCounterIsUnavailable) {
  Zone("intel-rapl:0", "package-0", 0, 1'000'000);
  Write("intel-rapl:0/energy_uj", "lots\n");
  EXPECT_EQ(RaplCounters::Open(dir()).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(FakePowercap, CounterLostDuringTrainingFallsBackToEstimate) {
  Zone("intel-rapl:0", "package-0", 0, 1'000'000);
  EnergyMeter meter(dir(), 10.0);
  meter.Start();
  SetEnergy("intel-rapl:0", 100'000);
  meter.Sample();
  fs::remove(dir_ / "intel-rapl:0/energy_uj");
  v1::Metrics metrics;
  metrics.set_training_cpu_seconds(3.0);
  meter.Finish(metrics);
  // Half a measurement is no measurement: labelled as estimated.
  EXPECT_EQ(metrics.energy_source(), v1::ENERGY_SOURCE_ESTIMATED);
  EXPECT_DOUBLE_EQ(metrics.training_energy_joules(), 30.0);
}

}  // namespace
}  // namespace evonas::worker
